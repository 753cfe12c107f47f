//! Property tests of the upload decoder and the metadata stripper against hostile bytes:
//! random files, real photos cut short or with bytes flipped, and headers that declare any size
//! at all. Every one is a refusal or a picture within the limits, never a panic; and a header
//! over the pixel cap is refused before its pixels are allocated (measured by the counting
//! allocator below, per thread).

use std::cell::Cell;
use std::io::Cursor;
use std::sync::OnceLock;

use image::{DynamicImage, ImageFormat};
use proptest::prelude::*;

use super::codec::{self, Kind, MAX_PIXELS, MAX_SIDE};
use super::{meta, synthetic};

/// The system allocator, counting the bytes live on threads that asked to be measured (the
/// rest of the test binary pays one thread-local read per allocation).
struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LIVE.try_with(|l| {
                let now = l.get() + delta;
                l.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        count(new as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// `f`'s result and the most bytes it had allocated at once (on this thread).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    (out, PEAK.with(Cell::get).max(0) as usize)
}

/// A small photo in each format, encoded once.
fn photos() -> &'static [(Kind, Vec<u8>)] {
    static PHOTOS: OnceLock<Vec<(Kind, Vec<u8>)>> = OnceLock::new();
    PHOTOS.get_or_init(|| {
        let image = DynamicImage::ImageRgb8(synthetic::photo(48, 32));
        let encode = |format| {
            let mut out = Cursor::new(Vec::new());
            image.write_to(&mut out, format).unwrap();
            out.into_inner()
        };
        vec![
            (Kind::Jpeg, encode(ImageFormat::Jpeg)),
            (Kind::Png, encode(ImageFormat::Png)),
            (Kind::Webp, codec::webp(&image, 75.0).unwrap()),
        ]
    })
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A PNG whose header declares `w`×`h` (8-bit RGB) followed by `body` as its only data.
fn png_declaring(w: u32, h: u32, body: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", body);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG whose frame header declares `w`×`h` (grey), with `body` as its scan.
fn jpeg_declaring(w: u16, h: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    // A quantisation table of ones.
    out.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend_from_slice(&[1; 64]);
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    // DC and AC Huffman tables with one one-bit code each.
    for class in [0x00, 0x10] {
        out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        out.extend_from_slice(&[0; 15]);
        out.push(0);
    }
    out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    out.extend(body.iter().map(|&b| if b == 0xFF { 0x00 } else { b }));
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A WebP whose extended header declares a `w`×`h` canvas (1 to 2²⁴ a side), then `body` as
/// a lossy bitstream.
fn webp_declaring(w: u32, h: u32, body: &[u8]) -> Vec<u8> {
    let mut chunks = Vec::new();
    chunks.extend_from_slice(b"VP8X");
    chunks.extend_from_slice(&10u32.to_le_bytes());
    chunks.extend_from_slice(&[0, 0, 0, 0]);
    chunks.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    chunks.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    chunks.extend_from_slice(b"VP8 ");
    chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
    chunks.extend_from_slice(body);
    if body.len() % 2 == 1 {
        chunks.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(chunks.len() as u32 + 4).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&chunks);
    out
}

fn over_the_cap(w: u64, h: u64) -> bool {
    w > u64::from(MAX_SIDE) || h > u64::from(MAX_SIDE) || w * h > MAX_PIXELS
}

/// A decode that did not refuse stayed within the limits.
fn within_limits(d: &codec::Decoded) -> Result<(), TestCaseError> {
    let (w, h) = (u64::from(d.width()), u64::from(d.height()));
    prop_assert!(w > 0 && h > 0 && !over_the_cap(w, h), "{w}×{h}");
    Ok(())
}

/// Memory a refused header may cost: the parser's own tables and buffers, not the image's.
const HEADER_BUDGET: usize = 4 * 1024 * 1024;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096), magic in 0..4usize) {
        let mut file = match magic {
            0 => Vec::new(),
            1 => vec![0xFF, 0xD8, 0xFF],
            2 => b"\x89PNG\r\n\x1a\n".to_vec(),
            _ => b"RIFF\0\0\0\0WEBP".to_vec(),
        };
        file.extend_from_slice(&bytes);
        let sniffed = codec::sniff(&file);
        match codec::decode(&file) {
            Ok(d) => {
                within_limits(&d)?;
                prop_assert_eq!(Some(d.kind), sniffed);
            }
            Err(r) => prop_assert!(!r.to_string().is_empty()),
        }
        let _ = codec::jpeg_complete(&file);
        for kind in Kind::ALL {
            let _ = meta::strip(kind, &file, 6);
        }
    }

    #[test]
    fn a_photo_cut_short_is_refused(pick in 0..3usize, cut in any::<prop::sample::Index>()) {
        let (kind, photo) = &photos()[pick];
        let at = cut.index(photo.len());
        match codec::decode(&photo[..at]) {
            Err(r) => prop_assert!(!r.too_large(), "{kind:?} cut at {at}: {r}"),
            Ok(_) => prop_assert!(false, "{kind:?} cut at {at} of {} was accepted", photo.len()),
        }
        let _ = meta::strip(*kind, &photo[..at], 1);
    }

    #[test]
    fn a_photo_with_flipped_bytes_is_refused_or_within_limits(
        pick in 0..3usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let (kind, photo) = &photos()[pick];
        let mut damaged = photo.clone();
        for (at, byte) in &flips {
            let i = at.index(damaged.len());
            damaged[i] = *byte;
        }
        if let Ok(d) = codec::decode(&damaged) {
            within_limits(&d)?;
        }
        if let Ok(stripped) = meta::strip(*kind, &damaged, 3) {
            // Stripping only drops metadata: never longer than the file plus a small EXIF block.
            prop_assert!(stripped.len() <= damaged.len() + 64);
        }
    }

    #[test]
    fn a_png_header_over_the_cap_allocates_nothing_near_it(
        w in prop_oneof![1..=2_000u32, 1..=u32::MAX >> 1],
        h in prop_oneof![1..=2_000u32, 1..=u32::MAX >> 1],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let file = png_declaring(w, h, &body);
        let (result, peak) = peak_of(|| codec::decode(&file));
        if over_the_cap(w.into(), h.into()) {
            // Refused as too large: by the dimensions, or (a row wider than any buffer) by the
            // decoder's memory limit while it reads the header.
            match result {
                Err(r) => prop_assert!(r.too_large(), "{w}×{h}: {r}"),
                Ok(_) => prop_assert!(false, "{w}×{h} accepted"),
            }
            prop_assert!(peak < HEADER_BUDGET, "{w}×{h}: {peak} bytes allocated");
        } else {
            // Under the cap the pixels may be allocated (4 bytes each at most here), no more.
            prop_assert!(peak < HEADER_BUDGET + (w as usize) * (h as usize) * 8, "{w}×{h}: {peak}");
            match result {
                Ok(d) => within_limits(&d)?,
                Err(r) => prop_assert!(!r.too_large(), "{w}×{h}: {r}"),
            }
        }
    }

    #[test]
    fn a_jpeg_header_over_the_cap_allocates_nothing_near_it(
        w in prop_oneof![1..=2_000u16, any::<u16>()],
        h in prop_oneof![1..=2_000u16, any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let file = jpeg_declaring(w, h, &body);
        let (result, peak) = peak_of(|| codec::decode(&file));
        if over_the_cap(w.into(), h.into()) {
            prop_assert!(result.is_err(), "{w}×{h} accepted");
            prop_assert!(peak < HEADER_BUDGET, "{w}×{h}: {peak} bytes allocated");
        } else {
            prop_assert!(peak < HEADER_BUDGET + (w as usize) * (h as usize) * 8, "{w}×{h}: {peak}");
            if let Ok(d) = result {
                within_limits(&d)?;
            }
        }
    }

    #[test]
    fn a_webp_header_over_the_cap_allocates_nothing_near_it(
        w in prop_oneof![1..=2_000u32, 1..=1u32 << 24],
        h in prop_oneof![1..=2_000u32, 1..=1u32 << 24],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let file = webp_declaring(w, h, &body);
        let (result, peak) = peak_of(|| codec::decode(&file));
        if over_the_cap(w.into(), h.into()) {
            prop_assert!(result.is_err(), "{w}×{h} accepted");
            prop_assert!(peak < HEADER_BUDGET, "{w}×{h}: {peak} bytes allocated");
        } else {
            prop_assert!(peak < HEADER_BUDGET + (w as usize) * (h as usize) * 8, "{w}×{h}: {peak}");
            if let Ok(d) = result {
                within_limits(&d)?;
            }
        }
    }
}

#[test]
fn the_counting_allocator_sees_what_is_allocated() {
    let (v, peak) = peak_of(|| vec![1u8; 8 << 20]);
    assert!(peak >= 8 << 20, "{peak}");
    drop(v);
    let (_, peak) = peak_of(|| codec::decode(&png_declaring(1000, 1000, &[])));
    assert!(
        peak >= 1000 * 1000 * 3,
        "a 1000×1000 PNG allocates its pixels: {peak}"
    );
}

/// Every cut of a PNG's last twelve bytes (its `IEND` chunk and checksum) is refused: the
/// decoder has the pixels by then and would accept it (the proptest above found the case).
#[test]
fn a_png_cut_inside_its_end_marker_is_refused() {
    let (kind, photo) = &photos()[1];
    assert_eq!(*kind, Kind::Png);
    assert!(codec::decode(photo).is_ok());
    for cut in 1..=12 {
        let short = &photo[..photo.len() - cut];
        assert!(
            matches!(codec::decode(short), Err(ref r) if !r.too_large()),
            "cut {cut}"
        );
    }
}
