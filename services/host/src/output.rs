//! Bounded capture of a child's stdout or stderr: keeps the first bytes up
//! to a limit, counts and discards the rest (so the child never blocks on a
//! full pipe), and renders the kept bytes as text cut on a character
//! boundary with a visible marker.

use tokio::io::{AsyncRead, AsyncReadExt};

/// What was read from one stream.
#[derive(Debug, Default)]
pub struct Captured {
    kept: Vec<u8>,
    total: u64,
}

impl Captured {
    /// Reads `stream` to its end, keeping at most `limit` bytes. A read
    /// error ends the capture like an end of stream: the child is gone or
    /// has closed its side, and what was read so far is still worth
    /// reporting.
    pub async fn read(mut stream: impl AsyncRead + Unpin, limit: usize) -> Captured {
        let mut captured = Captured::default();
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            captured.push(&buffer[..read], limit);
        }
        captured
    }

    fn push(&mut self, bytes: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
        self.total += bytes.len() as u64;
    }

    /// The output as text. Past the limit, the kept bytes are cut back to
    /// the last whole character and a marker says how much was dropped.
    /// Bytes that are not UTF-8 become U+FFFD.
    pub fn into_text(self) -> String {
        if self.total == self.kept.len() as u64 {
            return String::from_utf8_lossy(&self.kept).into_owned();
        }
        let cut = utf8_boundary(&self.kept);
        let dropped = self.total - cut as u64;
        let mut text = String::from_utf8_lossy(&self.kept[..cut]).into_owned();
        text.push_str(&truncation_marker(dropped));
        text
    }
}

/// `text` cut to at most `max` bytes on a character boundary, the cut
/// marked, the marker included in `max`.
pub fn clip(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let marker = truncation_marker((text.len() - max) as u64);
    let mut cut = max.saturating_sub(marker.len() + 8);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = (text.len() - cut) as u64;
    let mut clipped = text[..cut].to_string();
    clipped.push_str(&truncation_marker(dropped));
    clipped
}

/// The note that ends a truncated output.
pub fn truncation_marker(dropped: u64) -> String {
    format!("\n[skyclaw: output truncated, {dropped} bytes dropped]")
}

/// The length of the longest prefix of `bytes` that does not end inside a
/// multi-byte UTF-8 character.
fn utf8_boundary(bytes: &[u8]) -> usize {
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    // A character is at most 4 bytes: its first byte is among the last 4.
    let Some(start) = (bytes.len().saturating_sub(4)..bytes.len())
        .rev()
        .find(|&i| !is_continuation(bytes[i]))
    else {
        return bytes.len();
    };
    let width = match bytes[start] {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    if start + width > bytes.len() {
        start
    } else {
        bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clipped_text_fits_its_limit_and_says_so() {
        // Output that is not UTF-8 becomes three bytes of text per byte.
        let text = String::from_utf8_lossy(&[0xff; 100_000]).into_owned();
        assert_eq!(text.len(), 300_000);
        let clipped = clip(text, 256 * 1024);
        assert!(clipped.len() <= 256 * 1024, "{}", clipped.len());
        assert!(
            clipped.ends_with("bytes dropped]"),
            "{}",
            &clipped[clipped.len() - 60..]
        );
        let short = clip("é".repeat(10), 100);
        assert_eq!(short, "é".repeat(10));
        let cut = clip("é".repeat(100), 80);
        assert!(cut.len() <= 80 && cut.starts_with('é'), "{cut}");
    }

    fn capture(chunks: &[&[u8]], limit: usize) -> String {
        let mut captured = Captured::default();
        for chunk in chunks {
            captured.push(chunk, limit);
        }
        captured.into_text()
    }

    #[test]
    fn output_under_the_limit_is_whole() {
        assert_eq!(capture(&[b"hello ", b"world"], 11), "hello world");
    }

    #[test]
    fn multi_byte_text_is_cut_on_a_character_boundary() {
        // "é" is 2 bytes: a limit of 5 would split the third one.
        let text = "ééééé".as_bytes();
        assert_eq!(capture(&[text], 5), format!("éé{}", truncation_marker(6)));
        // "€" is 3 bytes and "𝄞" 4; every limit lands on or inside one.
        let text = "a€𝄞b".as_bytes();
        for limit in 1..text.len() {
            let out = capture(&[text], limit);
            let (kept, marker) = out.split_once('\n').unwrap();
            assert!(text.starts_with(kept.as_bytes()));
            assert!(!kept.contains('\u{fffd}'), "limit {limit}: {kept:?}");
            let dropped = text.len() - kept.len();
            assert_eq!(format!("\n{marker}"), truncation_marker(dropped as u64));
        }
    }

    #[test]
    fn dropped_bytes_count_everything_after_the_cut() {
        let chunks: Vec<&[u8]> = vec![b"0123456789"; 100];
        assert_eq!(
            capture(&chunks, 4),
            format!("0123{}", truncation_marker(996))
        );
    }

    #[test]
    fn invalid_utf8_does_not_break_rendering() {
        assert_eq!(capture(&[b"ok\xff\xfe"], 100), "ok\u{fffd}\u{fffd}");
        let out = capture(&[b"\xff\xff\xff\xff\xff\xff"], 3);
        assert!(out.starts_with("\u{fffd}"), "{out:?}");
    }

    #[tokio::test]
    async fn reading_a_stream_keeps_memory_bounded() {
        let big = vec![b'x'; 1 << 20];
        let captured = Captured::read(&big[..], 1000).await;
        assert_eq!(captured.kept.len(), 1000);
        assert_eq!(captured.total, 1 << 20);
    }
}
