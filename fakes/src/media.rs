//! Media hosting on every fake: `GET /media/{name}` serves [`SIZE`] deterministic bytes, so
//! publishers have URLs to hand to the platforms and bytes to upload (YouTube).
//!
//! The bytes start like the real format (an ISO-BMFF `ftyp` box for videos, a JPEG SOI/APP0 for
//! images) and carry a marker `nikara-fake-media:{name}\n`, so a fake that receives them back can
//! tell which media they were ([`name_in`]).

use poem::http::StatusCode;
use poem::web::Path;
use poem::{Response, handler};
use sha2::{Digest, Sha256};

/// Bytes served per media file.
pub(crate) const SIZE: usize = 4096;
const MARKER: &[u8] = b"nikara-fake-media:";

/// `video/mp4` for `.mp4`/`.mov`, `image/jpeg` for `.jpg`/`.jpeg`/`.png`, else
/// `application/octet-stream`.
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp4" | "mov" | "m4v") => "video/mp4",
        Some("jpg" | "jpeg" | "png") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// The marker plus pseudo-random filler derived from the name, exactly `len` bytes.
fn payload(name: &str, len: usize) -> Vec<u8> {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let short = name.get(..end).unwrap_or("");
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MARKER);
    out.extend_from_slice(short.as_bytes());
    out.push(b'\n');
    let digest = Sha256::digest(name.as_bytes());
    let mut seed = [0u8; 8];
    seed.copy_from_slice(digest.get(..8).unwrap_or(&[1; 8]));
    let mut x = u64::from_le_bytes(seed) | 1;
    while out.len() < len {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The [`SIZE`] bytes served for `name` (the same on every fake and every call).
pub(crate) fn bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    match content_type(name) {
        "video/mp4" => {
            out.extend_from_slice(&24u32.to_be_bytes());
            out.extend_from_slice(b"ftypisom\x00\x00\x02\x00isommp41");
            let free = u32::try_from(SIZE - out.len()).unwrap_or(0);
            out.extend_from_slice(&free.to_be_bytes());
            out.extend_from_slice(b"free");
            out.extend_from_slice(&payload(name, SIZE - out.len()));
        }
        "image/jpeg" => {
            out.extend_from_slice(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
            out.extend_from_slice(b"\xff\xfe");
            // COM segment: its length counts itself; the last two bytes are the EOI marker.
            let body = SIZE - out.len() - 2 - 2;
            let seg = u16::try_from(body + 2).unwrap_or(u16::MAX);
            out.extend_from_slice(&seg.to_be_bytes());
            out.extend_from_slice(&payload(name, body));
            out.extend_from_slice(b"\xff\xd9");
        }
        _ => out = payload(name, SIZE),
    }
    out
}

/// The media name in bytes served by a fake (searched in the first 512 bytes), if any.
pub(crate) fn name_in(data: &[u8]) -> Option<String> {
    let head = data.get(..512.min(data.len()))?;
    let start = head.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let rest = head.get(start..)?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    String::from_utf8(rest.get(..end)?.to_vec()).ok()
}

/// `GET /media/{name}`: 200 with the name's bytes and content type.
#[handler]
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type(&name))
        .body(bytes(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_typed_and_marked() {
        for name in ["clip.mp4", "photo.jpg", "x.png", "movie.MOV", "blob.bin"] {
            let b = bytes(name);
            assert_eq!(b.len(), SIZE, "{name}");
            assert_eq!(b, bytes(name));
            assert_eq!(name_in(&b).as_deref(), Some(name));
        }
        assert_ne!(bytes("a.mp4"), bytes("b.mp4"));
        assert_eq!(bytes("a.mp4").get(4..8), Some(&b"ftyp"[..]));
        let jpg = bytes("a.jpg");
        assert_eq!(jpg.get(..2), Some(&b"\xff\xd8"[..]));
        assert_eq!(jpg.get(SIZE - 2..), Some(&b"\xff\xd9"[..]));
        assert_eq!(content_type("a.mov"), "video/mp4");
        assert_eq!(content_type("a.png"), "image/jpeg");
        let long = "é".repeat(300);
        assert_eq!(bytes(&long).len(), SIZE);
        assert!(name_in(b"nothing here").is_none());
    }
}
