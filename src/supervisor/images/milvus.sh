# Milvus standalone 2.3.5: the binary and libraries PyPI's milvus==2.3.5 wheel ships (the real
# engine: C++ knowhere, embedded etcd, local storage), laid out as the official image does:
# /milvus/bin, /milvus/configs/milvus.yaml. Data paths come from the container's environment.
#   milvus.sh ROOTFS_DIR OUT_TAR   (env PYTHON: an interpreter with pip; WHEEL_SHA256: the pin)
root="$1" out="$2"
py="${PYTHON:-python3}"
dl="$(dirname "$out")/wheel"
mkdir -p "$dl"
# pip checks the pinned hash: a different file is refused.
printf 'milvus==2.3.5 --hash=sha256:%s\n' "$WHEEL_SHA256" >"$dl/requirements.txt"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
	-r "$dl/requirements.txt" -d "$dl"
wheel="$(ls "$dl"/milvus-2.3.5-*.whl | head -n1)"
bootstrap "$root"
mkdir -p "$root/milvus/bin" "$root/milvus/configs" "$root/milvus/data" "$root/milvus/logs" "$root/var/lib/milvus"
# Unpack bin/*.lzma (milvus and its shared libraries) and render the config template, as the
# wheel's launcher (milvus/__init__.py) does; logs go to stdout for the engine's log API.
"$py" - "$wheel" "$root/milvus" <<'PYEOF'
import lzma, os, re, sys, zipfile
wheel, base = sys.argv[1], sys.argv[2]
values = {
    'etcd_data_dir': '/var/lib/milvus/etcd',
    'local_storage_dir': '/var/lib/milvus/data',
    'rocksmq_data_dir': '/var/lib/milvus/rocksmq',
    'etcd_log_path': 'stdout',
    'system_log_path': '',
}
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith('milvus/data/bin/') and name.endswith('.lzma'):
            target = os.path.join(base, 'bin', os.path.basename(name)[:-5])
            with z.open(name) as raw, open(target, 'wb') as dst:
                dst.write(lzma.decompress(raw.read()))
            os.chmod(target, 0o755)
    template = z.read('milvus/data/config.yaml.template').decode()
    glog = z.read('milvus/data/glog.conf').decode()
def render(m):
    key, _, default = m.group(1).strip().partition(':')
    key = key.split('(')[0].strip()
    return values.get(key, default.strip())
config = re.sub(r'\{\{(.*?)}}', render, template)
assert '{{' not in config, 'unrendered template keys'
# Every component on 127.0.0.1, and etcd sessions of 10 s instead of 30: a component's address
# is otherwise the container's bridge IP, new at every start, and after a kill the next start
# waits on the dead one's sessions (measured: healthy 46 s -> 9 s, first query 51 s -> 17 s).
# The proxy still listens on every interface of the container: the published port works.
config, n_ip = re.subn(r'(?m)^(  ip:)[^\n]*$', r'\1 127.0.0.1', config)
assert n_ip == 7, n_ip
config, n_ttl = re.subn(r'(?m)^(    ttl:) 30 (# ttl value when session)', r'\1 10 \2', config)
assert n_ttl == 1, n_ttl
with open(os.path.join(base, 'configs', 'milvus.yaml'), 'w') as f:
    f.write(config)
with open(os.path.join(base, 'configs', 'glog.conf'), 'w') as f:
    f.write(glog)
PYEOF
slim "$root"
# Every library must resolve inside the image.
if chroot "$root" env LD_LIBRARY_PATH=/milvus/bin ldd /milvus/bin/milvus | grep 'not found'; then
	echo "milvus: libraries missing from the image" >&2
	exit 1
fi
pack "$root" "$out"
