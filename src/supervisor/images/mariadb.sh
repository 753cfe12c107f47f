# MariaDB 10.11 from Debian 12: the server and client cores, and a `mysql` account.
#   mariadb.sh ROOTFS_DIR OUT_TAR
root="$1" out="$2"
bootstrap "$root" mariadb-server-core,mariadb-client-core
# minbase has no `mysql` account, and mariadbd will not run as root. uid/gid 999, as in the
# official image, so a data directory keeps its owner if an operator switches images.
chroot "$root" groupadd --system --gid 999 mysql
chroot "$root" useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql \
	--no-create-home --shell /usr/sbin/nologin mysql
install -d -o 999 -g 999 -m 0755 "$root/run/mysqld" "$root/var/lib/mysql"
chroot "$root" mariadbd --version
slim "$root"
pack "$root" "$out"
