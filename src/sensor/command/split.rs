//! Cutting a command's output into frames as it arrives: JPEG images found with the marker walk
//! of MJPEG replay, or raw frames of a fixed size.
//!
//! The MJPEG splitter holds at most one unfinished image (up to its cap) and never more than two
//! bytes of anything else: bytes that are not part of an image are dropped as they arrive and
//! reported as one skipped stretch when the next image starts, so garbage costs no memory.

use crate::sensor::replay::{find_soi, frame_at, FrameAt};

/// What a stretch of the stream turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// One whole frame's bytes.
    Frame(Vec<u8>),
    /// Bytes that are not a frame were dropped; the message says how many and why.
    Skipped(String),
}

/// Cuts a byte stream into frames.
pub enum Splitter {
    /// Concatenated JPEG images, with resynchronisation at the next start-of-image marker.
    Mjpeg(MjpegSplitter),
    /// Frames of exactly this many bytes each.
    Raw(RawSplitter),
}

impl Splitter {
    /// Adds the next bytes of the stream and appends the frames and skipped stretches they
    /// complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Cut>) {
        match self {
            Splitter::Mjpeg(s) => s.feed(bytes, out),
            Splitter::Raw(s) => s.feed(bytes, out),
        }
    }
}

/// Finds JPEG images in a stream that arrives in pieces.
pub struct MjpegSplitter {
    /// From a start-of-image marker when `in_image`; otherwise at most the last two bytes seen,
    /// which may be the start of a marker.
    buf: Vec<u8>,
    in_image: bool,
    /// How much of `buf` is known to hold no end-of-image marker that completes the image.
    searched: usize,
    /// Bytes dropped since the last image.
    skipped: usize,
    /// Most bytes held for one image, and dropped in a row before that is reported.
    max_frame: usize,
}

impl MjpegSplitter {
    /// A splitter that gives up on an image once `max_frame` bytes hold no end to it.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: Vec::new(),
            in_image: false,
            searched: 0,
            skipped: 0,
            max_frame,
        }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Cut>) {
        self.buf.extend_from_slice(bytes);
        loop {
            if !self.in_image && !self.start_image(out) {
                return;
            }
            // An image can only end at an end-of-image marker: walk it again only once one came.
            let from = self.searched.saturating_sub(1);
            let ended = self.buf[from..].windows(2).any(|w| w == [0xFF, 0xD9]);
            let walked = if ended {
                frame_at(&self.buf, 0)
            } else {
                FrameAt::Truncated
            };
            match walked {
                FrameAt::Complete(end) => {
                    self.report_skipped(out);
                    out.push(Cut::Frame(self.buf[..end].to_vec()));
                    self.buf.drain(..end);
                    self.in_image = false;
                }
                FrameAt::Truncated if self.buf.len() <= self.max_frame => {
                    self.searched = self.buf.len();
                    return;
                }
                FrameAt::Truncated => self.give_up(out),
                FrameAt::Broken => self.drop_image(),
            }
        }
    }

    /// Drops what comes before the next start-of-image marker; false when there is none yet.
    fn start_image(&mut self, out: &mut Vec<Cut>) -> bool {
        match find_soi(&self.buf, 0) {
            Some(at) => {
                self.skipped += at;
                self.buf.drain(..at);
                self.in_image = true;
                self.searched = 0;
                true
            }
            None => {
                let keep = self.buf.len().min(2);
                let dropped = self.buf.len() - keep;
                self.skipped += dropped;
                self.buf.drain(..dropped);
                if self.skipped >= self.max_frame {
                    self.report_skipped(out);
                }
                false
            }
        }
    }

    /// Gives up on the image at the start of `buf`: its marker is skipped and the search for the
    /// next one starts right after it.
    fn drop_image(&mut self) {
        self.buf.drain(..2);
        self.skipped += 2;
        self.in_image = false;
    }

    /// Gives up on an image held to the cap: everything before the next start-of-image marker
    /// in `buf` is dropped and reported at once.
    fn give_up(&mut self, out: &mut Vec<Cut>) {
        let held = self.buf.len();
        let next = find_soi(&self.buf, 2).unwrap_or(held - 2);
        self.buf.drain(..next);
        self.in_image = false;
        out.push(Cut::Skipped(format!(
            "no end of image within {held} bytes of a JPEG start; skipped {} bytes",
            self.skipped + next
        )));
        self.skipped = 0;
    }

    fn report_skipped(&mut self, out: &mut Vec<Cut>) {
        if self.skipped > 0 {
            out.push(Cut::Skipped(format!(
                "skipped {} bytes that are not a JPEG image",
                self.skipped
            )));
            self.skipped = 0;
        }
    }
}

/// Cuts a stream into frames of one size.
pub struct RawSplitter {
    buf: Vec<u8>,
    frame: usize,
}

impl RawSplitter {
    /// Frames of `frame` bytes (more than 0).
    pub fn new(frame: usize) -> Self {
        Self {
            buf: Vec::with_capacity(frame),
            frame,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Cut>) {
        while !bytes.is_empty() {
            let take = (self.frame - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == self.frame {
                let next = Vec::with_capacity(self.frame);
                out.push(Cut::Frame(std::mem::replace(&mut self.buf, next)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(colour: [u8; 3]) -> Vec<u8> {
        crate::sensor::replay::solid_jpeg(colour, 16)
    }

    /// Feeds `stream` in pieces of `piece` bytes.
    fn split(splitter: &mut Splitter, stream: &[u8], piece: usize) -> Vec<Cut> {
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            splitter.feed(chunk, &mut out);
        }
        out
    }

    fn mjpeg() -> Splitter {
        Splitter::Mjpeg(MjpegSplitter::new(1 << 20))
    }

    fn frames(cuts: &[Cut]) -> Vec<&[u8]> {
        cuts.iter()
            .filter_map(|c| match c {
                Cut::Frame(f) => Some(&f[..]),
                Cut::Skipped(_) => None,
            })
            .collect()
    }

    fn skipped(cuts: &[Cut]) -> Vec<&str> {
        cuts.iter()
            .filter_map(|c| match c {
                Cut::Skipped(m) => Some(m.as_str()),
                Cut::Frame(_) => None,
            })
            .collect()
    }

    #[test]
    fn images_split_alike_whatever_the_pieces_they_arrive_in() {
        let (a, b) = (jpeg([255, 0, 0]), jpeg([0, 0, 255]));
        let stream = [a.clone(), b.clone(), a.clone()].concat();
        for piece in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let cuts = split(&mut mjpeg(), &stream, piece);
            assert_eq!(frames(&cuts), [&a[..], &b[..], &a[..]], "pieces of {piece}");
            assert!(skipped(&cuts).is_empty(), "pieces of {piece}: {cuts:?}");
        }
    }

    #[test]
    fn garbage_between_images_is_skipped_and_reported_once_per_stretch() {
        let (a, b) = (jpeg([0, 255, 0]), jpeg([255, 255, 255]));
        // Text, then a start marker followed by no marker structure.
        let junk: &[u8] = b"ffmpeg says hello\xFF\xD8\xFF\x00\x12";
        // An image cut off before its end marker, the next one starting in its place.
        let cut = &a[..a.len() - 2];
        // A start marker right before another image's.
        let restart: &[u8] = b"\xFF\xD8";
        let stream = [junk, &a, junk, cut, &b, restart, &a].concat();
        for piece in [1, 5, 64, stream.len()] {
            let cuts = split(&mut mjpeg(), &stream, piece);
            assert_eq!(frames(&cuts), [&a[..], &b[..], &a[..]], "pieces of {piece}");
            let skipped_bytes = |n: usize| format!("skipped {n} bytes that are not a JPEG image");
            assert_eq!(
                skipped(&cuts),
                [
                    skipped_bytes(junk.len()),
                    skipped_bytes(junk.len() + cut.len()),
                    skipped_bytes(restart.len()),
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn garbage_is_not_buffered_and_is_reported_at_the_cap() {
        let mut splitter = MjpegSplitter::new(1000);
        let mut out = Vec::new();
        // No 0xFF byte, so no marker: 34 reads, the first 32 dropping 1198 or 1200 bytes per 4.
        let noise: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for chunk in noise.chunks(300) {
            splitter.feed(chunk, &mut out);
            assert!(splitter.buf.len() <= 2, "{} bytes held", splitter.buf.len());
        }
        assert!(frames(&out).is_empty());
        assert_eq!(out.len(), 8, "{out:?}");
        out.clear();
        let a = jpeg([0, 0, 0]);
        splitter.feed(&a, &mut out);
        assert_eq!(
            out,
            [
                Cut::Skipped("skipped 402 bytes that are not a JPEG image".into()),
                Cut::Frame(a)
            ]
        );
    }

    #[test]
    fn an_image_that_never_ends_is_given_up_at_the_cap() {
        let a = jpeg([10, 20, 30]);
        let cap = 3 * a.len();
        let mut splitter = MjpegSplitter::new(cap);
        let mut out = Vec::new();
        // A start of image, then scan-like data without markers.
        let mut endless = a[..a.len() - 2].to_vec();
        endless.resize(cap + 10, 0x55);
        splitter.feed(&endless, &mut out);
        assert!(splitter.buf.len() <= 2, "{} bytes held", splitter.buf.len());
        assert_eq!(
            skipped(&out),
            [format!(
                "no end of image within {} bytes of a JPEG start; skipped {} bytes",
                cap + 10,
                cap + 8
            )]
        );
        out.clear();
        splitter.feed(&a, &mut out);
        assert_eq!(frames(&out), [&a[..]]);
        assert_eq!(skipped(&out), ["skipped 2 bytes that are not a JPEG image"]);
    }

    #[test]
    fn raw_frames_are_cut_at_their_size() {
        let mut splitter = Splitter::Raw(RawSplitter::new(12));
        let stream: Vec<u8> = (0..40).collect();
        for piece in [1, 5, 12, 40] {
            let mut splitter_for_piece = Splitter::Raw(RawSplitter::new(12));
            let cuts = split(&mut splitter_for_piece, &stream, piece);
            assert_eq!(
                frames(&cuts),
                [&stream[0..12], &stream[12..24], &stream[24..36]],
                "pieces of {piece}"
            );
        }
        let mut out = Vec::new();
        splitter.feed(&stream[..11], &mut out);
        assert!(out.is_empty());
        splitter.feed(&stream[11..13], &mut out);
        assert_eq!(frames(&out), [&stream[..12]]);
    }
}
