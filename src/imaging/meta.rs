//! Metadata stripping for uploaded originals. A phone photo carries EXIF: the GPS position where
//! it was taken (often the seller's home), the camera, the time, a thumbnail. Originals are
//! served (`/img/{sha}/orig`, and in place of a variant until the worker has made it), so the
//! upload path removes all of it before the file is stored, **losslessly**: the compressed image
//! data is copied byte for byte, only metadata segments and chunks are dropped. The one fact
//! worth keeping, the orientation, is written back as a minimal EXIF block of a single tag.
//!
//! JPEG: APP1 (EXIF, XMP), APP3–APP13, APP15 and comments are dropped, and whatever follows the
//! end-of-image marker (phones append a second "multi-picture" image with its own EXIF there);
//! APP0 (JFIF), APP2 `ICC_PROFILE` (colour) and APP14 (Adobe colour transform) are kept.
//! PNG: `eXIf`, `tEXt`, `zTXt`, `iTXt` and `tIME` chunks are dropped. WebP: the `EXIF` and
//! `XMP ` chunks are dropped and the VP8X flags updated.

use super::codec::Kind;

/// Why the metadata could not be removed (the file's structure is not what its format says).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} structure is damaged")]
pub struct Damaged(&'static str);

/// The file without metadata; `orientation` (EXIF 1–8, 1 = upright) is kept when not upright.
pub fn strip(kind: Kind, bytes: &[u8], orientation: u8) -> Result<Vec<u8>, Damaged> {
    let keep = (2..=8).contains(&orientation).then_some(orientation);
    match kind {
        Kind::Jpeg => jpeg(bytes, keep),
        Kind::Png => png(bytes, keep),
        Kind::Webp => webp(bytes, keep),
    }
}

/// A TIFF structure (big-endian) whose first IFD holds one entry: the orientation.
fn tiff_orientation(o: u8) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&1u16.to_be_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_be_bytes()); // count
    t.extend_from_slice(&[0, o, 0, 0]); // value, padded to 4 bytes
    t.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    t
}

fn jpeg(b: &[u8], orientation: Option<u8>) -> Result<Vec<u8>, Damaged> {
    const BAD: Damaged = Damaged("JPEG");
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(BAD);
    }
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut orientation_written = false;
    let mut write_orientation = |out: &mut Vec<u8>| {
        if let (Some(o), false) = (orientation, orientation_written) {
            let mut payload = b"Exif\0\0".to_vec();
            payload.extend(tiff_orientation(o));
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            out.extend(payload);
            orientation_written = true;
        }
    };
    let mut pos = 2;
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, then the code.
        if b.get(pos) != Some(&0xFF) {
            return Err(BAD);
        }
        while b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let code = *b.get(pos + 1).ok_or(BAD)?;
        if code == 0xD9 {
            write_orientation(&mut out);
            out.extend_from_slice(&[0xFF, 0xD9]);
            return Ok(out); // anything after the end of the image is dropped
        }
        if (0xD0..=0xD7).contains(&code) || code == 0x01 {
            out.extend_from_slice(&[0xFF, code]);
            pos += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([
            *b.get(pos + 2).ok_or(BAD)?,
            *b.get(pos + 3).ok_or(BAD)?,
        ]));
        let end = pos + 2 + len;
        if len < 2 || end > b.len() {
            return Err(BAD);
        }
        let payload = &b[pos + 4..end];
        let keep = match code {
            0xE0 | 0xEE => true,
            0xE2 => payload.starts_with(b"ICC_PROFILE\0"),
            0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
            _ => true,
        };
        // The orientation goes after JFIF's APP0 (which must come first) and before the frame.
        if code != 0xE0 {
            write_orientation(&mut out);
        }
        if keep {
            out.extend_from_slice(&b[pos..end]);
        }
        pos = end;
        if code == 0xDA {
            // Entropy-coded data up to the next marker that is not a stuffed byte or a restart.
            let mut i = pos;
            loop {
                let at = i + b
                    .get(i..)
                    .ok_or(BAD)?
                    .iter()
                    .position(|&x| x == 0xFF)
                    .ok_or(BAD)?;
                match b.get(at + 1) {
                    Some(0x00 | 0xD0..=0xD7 | 0xFF) => i = at + 1,
                    Some(_) => {
                        out.extend_from_slice(&b[pos..at]);
                        pos = at;
                        break;
                    }
                    None => return Err(BAD),
                }
            }
        }
    }
}

/// PNG chunks: 4-byte length, 4-byte type, data, 4-byte CRC of type and data.
fn png(b: &[u8], mut orientation: Option<u8>) -> Result<Vec<u8>, Damaged> {
    const BAD: Damaged = Damaged("PNG");
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !b.starts_with(SIGNATURE) {
        return Err(BAD);
    }
    let mut out = SIGNATURE.to_vec();
    let mut pos = SIGNATURE.len();
    while pos < b.len() {
        let len = u32::from_be_bytes(
            b.get(pos..pos + 4)
                .ok_or(BAD)?
                .try_into()
                .map_err(|_| BAD)?,
        );
        let end = pos + 12 + len as usize;
        let kind = b.get(pos + 4..pos + 8).ok_or(BAD)?;
        if end > b.len() {
            return Err(BAD);
        }
        // eXIf must precede the image data.
        if (kind == b"IDAT" || kind == b"IEND")
            && let Some(o) = orientation.take()
        {
            let data = tiff_orientation(o);
            let mut crc = crc32fast::Hasher::new();
            crc.update(b"eXIf");
            crc.update(&data);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(b"eXIf");
            out.extend(data);
            out.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME") {
            out.extend_from_slice(&b[pos..end]);
        }
        pos = end;
        if kind == b"IEND" {
            break;
        }
    }
    Ok(out)
}

/// WebP: `RIFF`, size, `WEBP`, then chunks (fourcc, little-endian size, data padded to even).
fn webp(b: &[u8], orientation: Option<u8>) -> Result<Vec<u8>, Damaged> {
    const BAD: Damaged = Damaged("WebP");
    if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return Err(BAD);
    }
    let riff_end =
        (8 + u32::from_le_bytes(b[4..8].try_into().map_err(|_| BAD)?) as usize).min(b.len());
    let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
    let mut vp8x_flags_at = None;
    let mut pos = 12;
    while pos + 8 <= riff_end {
        let fourcc = &b[pos..pos + 4];
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().map_err(|_| BAD)?) as usize;
        let end = pos + 8 + len + (len & 1);
        if pos + 8 + len > riff_end {
            return Err(BAD);
        }
        let end = end.min(riff_end);
        match fourcc {
            b"EXIF" | b"XMP " => {}
            _ => {
                if fourcc == b"VP8X" {
                    vp8x_flags_at = Some(out.len() + 8);
                }
                out.extend_from_slice(&b[pos..end]);
            }
        }
        pos = end;
    }
    let mut exif_flag = false;
    if let (Some(o), Some(_)) = (orientation, vp8x_flags_at) {
        // Only an extended (VP8X) file may carry EXIF; a simple one is left without.
        let data = tiff_orientation(o);
        out.extend_from_slice(b"EXIF");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend(&data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
        exif_flag = true;
    }
    if let Some(at) = vp8x_flags_at {
        let flags = out.get_mut(at).ok_or(BAD)?;
        *flags &= !(0x08 | 0x04);
        if exif_flag {
            *flags |= 0x08;
        }
    }
    let size = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
    use std::io::Cursor;

    /// An EXIF block with an orientation, a GPS pointer and a maker string: what a phone writes.
    fn phone_exif(orientation: u8) -> Vec<u8> {
        let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
        t.extend_from_slice(&2u16.to_be_bytes());
        t.extend_from_slice(&0x0112u16.to_be_bytes());
        t.extend_from_slice(&3u16.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&[0, orientation, 0, 0]);
        t.extend_from_slice(&0x8825u16.to_be_bytes()); // GPS IFD pointer
        t.extend_from_slice(&4u16.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&38u32.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(b"GPS -1.2921 36.8219 SECRET-HOME");
        t
    }

    fn photo() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        }))
    }

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        photo().write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn with_jpeg_exif(jpeg: &[u8], o: u8) -> Vec<u8> {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend(phone_exif(o));
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
        out.extend_from_slice(&[0xFF, 0xFE, 0, 9]);
        out.extend_from_slice(b"comment");
        out.extend_from_slice(&jpeg[2..]);
        out.extend_from_slice(b"\xFF\xD8 a second picture with EXIF: SECRET-HOME");
        out
    }

    fn decode(bytes: &[u8]) -> (image::metadata::Orientation, DynamicImage) {
        let mut d = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .unwrap()
            .into_decoder()
            .unwrap();
        let o = d.orientation().unwrap();
        (o, DynamicImage::from_decoder(d).unwrap())
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn jpeg_loses_gps_comments_and_trailers_but_keeps_pixels_and_orientation() {
        let plain = encoded(image::ImageFormat::Jpeg);
        let phone = with_jpeg_exif(&plain, 6);
        assert!(contains(&phone, b"SECRET-HOME"));
        let clean = strip(Kind::Jpeg, &phone, 6).unwrap();
        assert!(!contains(&clean, b"SECRET-HOME"), "GPS or trailer survived");
        assert!(!contains(&clean, b"comment"));
        let (o, pixels) = decode(&clean);
        assert_eq!(o.to_exif(), 6, "orientation kept");
        assert_eq!(pixels, decode(&plain).1, "image data copied unchanged");
        assert!(crate::imaging::codec::jpeg_complete(&clean));
        // Upright photos get no EXIF at all; stripping twice changes nothing.
        let upright = strip(Kind::Jpeg, &with_jpeg_exif(&plain, 1), 1).unwrap();
        assert!(!contains(&upright, b"Exif"));
        assert_eq!(strip(Kind::Jpeg, &upright, 1).unwrap(), upright);
    }

    #[test]
    fn png_loses_text_and_exif_chunks() {
        let plain = encoded(image::ImageFormat::Png);
        // Insert a tEXt chunk after IHDR (8 + 25 bytes).
        let data = b"Comment\0SECRET-HOME";
        let mut crc = crc32fast::Hasher::new();
        crc.update(b"tEXt");
        crc.update(data);
        let mut phone = plain[..33].to_vec();
        phone.extend_from_slice(&(data.len() as u32).to_be_bytes());
        phone.extend_from_slice(b"tEXt");
        phone.extend_from_slice(data);
        phone.extend_from_slice(&crc.finalize().to_be_bytes());
        phone.extend_from_slice(&plain[33..]);
        let clean = strip(Kind::Png, &phone, 3).unwrap();
        assert!(!contains(&clean, b"SECRET-HOME"));
        let (o, pixels) = decode(&clean);
        assert_eq!(o.to_exif(), 3);
        assert_eq!(pixels, photo());
    }

    #[test]
    fn webp_loses_exif_and_xmp_chunks() {
        // A lossless WebP, made extended (VP8X) with EXIF and XMP chunks as a phone app would.
        let plain = encoded(image::ImageFormat::WebP);
        let body = &plain[12..];
        let mut chunks = Vec::new();
        chunks.extend_from_slice(b"VP8X");
        chunks.extend_from_slice(&10u32.to_le_bytes());
        chunks.push(0x08 | 0x04);
        chunks.extend_from_slice(&[0, 0, 0]);
        chunks.extend_from_slice(&(47u32).to_le_bytes()[..3]); // width - 1
        chunks.extend_from_slice(&(31u32).to_le_bytes()[..3]); // height - 1
        chunks.extend_from_slice(body);
        let exif = phone_exif(8);
        chunks.extend_from_slice(b"EXIF");
        chunks.extend_from_slice(&(exif.len() as u32).to_le_bytes());
        chunks.extend(&exif);
        if exif.len() % 2 == 1 {
            chunks.push(0);
        }
        chunks.extend_from_slice(b"XMP ");
        chunks.extend_from_slice(&12u32.to_le_bytes());
        chunks.extend_from_slice(b"SECRET-HOME!");
        let mut phone = b"RIFF".to_vec();
        phone.extend_from_slice(&((chunks.len() + 4) as u32).to_le_bytes());
        phone.extend_from_slice(b"WEBP");
        phone.extend(chunks);
        assert_eq!(decode(&phone).0.to_exif(), 8);
        let clean = strip(Kind::Webp, &phone, 8).unwrap();
        assert!(!contains(&clean, b"SECRET-HOME"));
        let (o, pixels) = decode(&clean);
        assert_eq!(o.to_exif(), 8);
        assert_eq!(pixels.to_rgb8(), photo().to_rgb8());
    }

    #[test]
    fn damaged_structures_are_named() {
        assert_eq!(
            strip(Kind::Jpeg, b"\xFF\xD8\xFF\xE1\x00", 1)
                .unwrap_err()
                .to_string(),
            "the JPEG structure is damaged"
        );
        assert!(strip(Kind::Png, b"\x89PNG\r\n\x1a\n\0\0\0\xFFIDAT", 1).is_err());
        assert!(strip(Kind::Webp, b"RIFF\x04\0\0\0WEBX", 1).is_err());
    }
}
