//! Uploaded images, in memory and on the CPU only: recognise the format from the bytes (never
//! from the client's name or content type), refuse what is too large before decoding it, decode
//! safely (a truncated or damaged file is refused, not half-shown), and make the resized WebP
//! variants. No I/O: the web layer calls [`decode`] to check an upload, the image worker calls
//! it again to make the variants with [`shrink`] and [`webp`].

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

/// Largest upload accepted, in bytes (below the HTTP body limit, so the reason can be given).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Largest image accepted, in pixels: a 40-megapixel phone photo decodes to 120 MB of RGB.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Longest side accepted: WebP cannot encode more than 16383 pixels a side.
pub const MAX_SIDE: u32 = 16_383;
/// Memory one decode may allocate: a 40-megapixel RGBA image at 16 bits a channel.
const MAX_ALLOC: u64 = MAX_PIXELS * 8;
/// The variants the storefront asks for (`/img/{sha}/320.webp`, `800.webp`): width in pixels
/// and WebP quality, widest first (each is scaled from the one before, which is cheaper).
pub const VARIANTS: [(u32, f32); 2] = [(800, 78.0), (320, 70.0)];

/// The formats sellers may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Webp,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Jpeg, Kind::Png, Kind::Webp];

    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Webp => "image/webp",
        }
    }

    /// The file name extension of the original on disk.
    pub fn ext(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Webp => "webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Png => ImageFormat::Png,
            Kind::Webp => ImageFormat::WebP,
        }
    }
}

/// Why an upload is refused; the message is shown to the seller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the file is larger than {} MB", MAX_BYTES / (1024 * 1024))]
    TooManyBytes,
    #[error(
        "the image is {0}×{1} pixels; the limit is {mp} megapixels and {MAX_SIDE} pixels a side",
        mp = MAX_PIXELS / 1_000_000
    )]
    TooManyPixels(u32, u32),
    #[error(
        "the photo is {0}×{1} pixels; search by photo takes at most {2} megapixels \
         (limits.photo_query_megapixels): send a smaller photo"
    )]
    QueryTooManyPixels(u32, u32, u64),
    #[error("the image needs more memory to open than the limit allows")]
    TooMuchMemory,
    #[error("no photo was chosen, or the file is empty")]
    Empty,
    #[error("the file is not a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error("the image is damaged or incomplete ({0})")]
    Corrupt(String),
    #[error("a product may have at most {0} photos")]
    TooManyPhotos(u64),
    /// The seller's quota of stored photo bytes (the message names it).
    #[error("{0}")]
    OverQuota(String),
}

impl Refusal {
    /// Too large (413) rather than not a usable image (422).
    pub fn too_large(&self) -> bool {
        matches!(
            self,
            Refusal::TooManyBytes
                | Refusal::TooManyPixels(..)
                | Refusal::QueryTooManyPixels(..)
                | Refusal::TooMuchMemory
        )
    }
}

/// The format, from the file's first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else {
        None
    }
}

/// A decoded upload: its format and its pixels, turned upright (EXIF orientation applied).
pub struct Decoded {
    pub kind: Kind,
    pub image: DynamicImage,
    /// The EXIF orientation the file declared (1 = upright), already applied to `image`.
    pub orientation: u8,
}

impl Decoded {
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    pub fn height(&self) -> u32 {
        self.image.height()
    }
}

/// Check and decode an upload. The size in bytes, the format and then the dimensions (read from
/// the header alone) are checked before any pixel is decoded, so a small file that declares a
/// huge image (a decompression bomb) is refused without allocating it.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Refusal> {
    decode_within(bytes, MAX_PIXELS)
}

/// [`decode`] with a lower pixel cap (a search query photo): an image over `max_pixels` is
/// refused from its header, before any pixel is decoded, naming the query limit.
pub fn decode_within(bytes: &[u8], max_pixels: u64) -> Result<Decoded, Refusal> {
    if bytes.len() > MAX_BYTES {
        return Err(Refusal::TooManyBytes);
    }
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    let kind = sniff(bytes).ok_or(Refusal::NotAnImage)?;
    if kind == Kind::Jpeg && !jpeg_complete(bytes) {
        return Err(Refusal::Corrupt("the JPEG data ends early".into()));
    }
    if kind == Kind::Webp && !webp_complete(bytes) {
        return Err(Refusal::Corrupt("the WebP data ends early".into()));
    }
    if kind == Kind::Png && !png_complete(bytes) {
        return Err(Refusal::Corrupt("the PNG data ends early".into()));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Refusal::Corrupt("the image has no pixels".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Refusal::TooManyPixels(w, h));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(Refusal::QueryTooManyPixels(w, h, max_pixels / 1_000_000));
    }
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    decoder.set_limits(limits).map_err(refusal)?;
    let orientation = decoder.orientation().map_err(refusal)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        kind,
        image,
        orientation: orientation.to_exif(),
    })
}

fn refusal(e: ImageError) -> Refusal {
    match e {
        ImageError::Limits(_) => Refusal::TooMuchMemory,
        ImageError::Unsupported(u) => Refusal::Corrupt(format!("unsupported: {u}")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Refusal::Corrupt("the file ends early".into())
        }
        other => Refusal::Corrupt(other.to_string()),
    }
}

/// Walk a JPEG's segments to its end-of-image marker. The JPEG decoder is lenient (it paints a
/// cut-off photo grey rather than fail), so an upload that stops early is caught here.
pub fn jpeg_complete(b: &[u8]) -> bool {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // The next marker: 0xFF (fill bytes allowed), then its code.
        match b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
        {
            Some(p) => i += p,
            None => return false,
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        if len < 2 {
            return false;
        }
        i += len;
        if i > b.len() {
            return false;
        }
        if marker == 0xDA {
            // Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart marker
            // inside it; anything else is the next segment.
            loop {
                match b[i..].iter().position(|&x| x == 0xFF) {
                    Some(p) => i += p,
                    None => return false,
                }
                match b.get(i + 1) {
                    None => return false,
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Walk a PNG's chunks to a whole `IEND`. The PNG decoder stops once it has the pixels, so a
/// file cut inside its last chunk (the end marker or its checksum) would pass it.
pub fn png_complete(b: &[u8]) -> bool {
    if !b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return false;
    }
    let mut i = 8;
    while let Some(head) = b.get(i..i + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        // Length, type, data, CRC.
        let Some(end) = len.checked_add(12).and_then(|n| n.checked_add(i)) else {
            return false;
        };
        if end > b.len() {
            return false;
        }
        if &head[4..8] == b"IEND" {
            return true;
        }
        i = end;
    }
    false
}

/// Walk a WebP's RIFF chunks to the end the header declares. The VP8 decoder, like the JPEG
/// one, paints a cut-off bitstream rather than fail, so an upload that stops early is caught
/// here: every chunk must be whole (only the final padding byte may be missing).
pub fn webp_complete(b: &[u8]) -> bool {
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return false;
    }
    let declared = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let Some(riff_end) = declared.checked_add(8) else {
        return false;
    };
    if riff_end > b.len() + 1 {
        return false;
    }
    let end = riff_end.min(b.len());
    let mut i = 12;
    let mut chunks = 0;
    while i + 8 <= end {
        let size = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let Some(data_end) = (i + 8).checked_add(size).filter(|e| *e <= end) else {
            return false;
        };
        chunks += 1;
        i = data_end + (size & 1);
    }
    chunks > 0 && i >= end
}

/// The image scaled down to `width` pixels wide, height in proportion; `None` when it is not
/// wider than that already (small photos are not enlarged).
pub fn shrink(image: &DynamicImage, width: u32) -> Option<DynamicImage> {
    if image.width() <= width {
        return None;
    }
    let height =
        (u64::from(image.height()) * u64::from(width) / u64::from(image.width())).max(1) as u32;
    Some(image.resize_exact(width, height, image::imageops::FilterType::CatmullRom))
}

/// Lossy WebP at `quality` (0–100), with an alpha channel only when the image has one.
pub fn webp(image: &DynamicImage, quality: f32) -> Result<Vec<u8>, String> {
    let (w, h) = (image.width(), image.height());
    let encoded = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        webp::Encoder::from_rgba(rgba.as_raw(), w, h).encode_simple(false, quality)
    } else {
        let rgb = image.to_rgb8();
        webp::Encoder::from_rgb(rgb.as_raw(), w, h).encode_simple(false, quality)
    };
    encoded
        .map(|m| m.to_vec())
        .map_err(|e| format!("WebP encoding failed: {e:?}"))
}
