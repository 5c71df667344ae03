//! JPEG marker segments: one walk over a JPEG's structure, used to split MJPEG streams into
//! frames and to check (and complete) camera frames before decoding.
//!
//! A JPEG is a start-of-image marker (`FF D8`), then segments, each a marker (`FF` and a code, any
//! number of `FF` fill bytes before it) and, for most codes, a big-endian length that counts
//! itself and the payload. A start-of-scan segment is followed by entropy-coded data, in which a
//! data byte `FF` is stuffed as `FF 00` and restart markers `FF D0`–`FF D7` may appear; the walk
//! skips it to the next real marker. The end-of-image marker (`FF D9`) ends the walk.

/// Start of image.
pub const SOI: u8 = 0xD8;
/// End of image.
pub const EOI: u8 = 0xD9;
/// Start of scan: entropy-coded data follows its header.
pub const SOS: u8 = 0xDA;
/// Huffman tables.
pub const DHT: u8 = 0xC4;

/// One marker segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// The marker code (the byte after `FF`).
    pub marker: u8,
    /// Where the segment starts: the `FF` just before the code (fill bytes are not part of it).
    pub start: usize,
    /// Where it ends (exclusive): after its payload; for a scan, after the scan's header, before
    /// the entropy-coded data.
    pub end: usize,
}

/// Why the walk stopped before the end-of-image marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The data ends first.
    #[error("{0}")]
    Truncated(&'static str),
    /// The bytes are not a marker structure.
    #[error("{0}")]
    Malformed(&'static str),
}

/// True when `data` starts with a start-of-image marker.
pub fn starts_with_soi(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0xFF && data[1] == SOI
}

/// The segments of the JPEG whose start-of-image marker is at `soi`, in order, up to and including
/// the end-of-image marker. After an error the iterator ends.
pub fn segments(data: &[u8], soi: usize) -> Segments<'_> {
    Segments {
        data,
        pos: soi + 2,
        in_scan: false,
        done: false,
    }
}

/// Iterator over a JPEG's marker segments; see [`segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    data: &'a [u8],
    pos: usize,
    in_scan: bool,
    done: bool,
}

impl Segments<'_> {
    fn next_segment(&mut self) -> Result<Segment, SegmentError> {
        let data = self.data;
        if self.in_scan {
            self.pos = skip_entropy_coded(data, self.pos)?;
            self.in_scan = false;
        }
        let mut pos = self.pos;
        match data.get(pos) {
            None => return Err(SegmentError::Truncated("ends before the image does")),
            Some(0xFF) => {}
            Some(_) => {
                return Err(SegmentError::Malformed(
                    "expected a marker between segments",
                ))
            }
        }
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let start = pos;
        let Some(&marker) = data.get(pos + 1) else {
            return Err(SegmentError::Truncated("ends inside a marker"));
        };
        let after_code = pos + 2;
        let end = match marker {
            // Markers without a length: TEM, RST0-7, SOI and EOI.
            0x01 | 0xD0..=0xD7 | SOI | EOI => after_code,
            0x00 => {
                return Err(SegmentError::Malformed(
                    "stuffed byte where a marker belongs",
                ))
            }
            _ => {
                let Some(len) = data.get(after_code..after_code + 2) else {
                    return Err(SegmentError::Truncated("ends inside a segment header"));
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if len < 2 {
                    return Err(SegmentError::Malformed("segment length below 2"));
                }
                if after_code + len > data.len() {
                    return Err(SegmentError::Truncated("ends inside a segment"));
                }
                after_code + len
            }
        };
        self.pos = end;
        self.in_scan = marker == SOS;
        Ok(Segment { marker, start, end })
    }
}

impl Iterator for Segments<'_> {
    type Item = Result<Segment, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_segment();
        self.done = !matches!(item, Ok(s) if s.marker != EOI);
        Some(item)
    }
}

/// After a scan's header: the position of the next marker that is neither a stuffed byte nor a
/// restart marker.
fn skip_entropy_coded(data: &[u8], mut i: usize) -> Result<usize, SegmentError> {
    let truncated = SegmentError::Truncated("ends inside the image data");
    loop {
        let at = data.get(i..).ok_or(truncated)?;
        let ff = memchr_ff(at).ok_or(truncated)?;
        i += ff;
        match *data.get(i + 1).ok_or(truncated)? {
            0x00 | 0xD0..=0xD7 => i += 2,
            // A fill byte: the marker code follows.
            0xFF => i += 1,
            _ => return Ok(i),
        }
    }
}

fn memchr_ff(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, 0]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn walks_an_encoded_image_to_its_end() {
        let data = jpeg();
        let segs: Vec<Segment> = segments(&data, 0).map(Result::unwrap).collect();
        let markers: Vec<u8> = segs.iter().map(|s| s.marker).collect();
        assert!(
            markers.contains(&DHT) && markers.contains(&SOS),
            "{markers:02X?}"
        );
        let last = segs.last().unwrap();
        assert_eq!((last.marker, last.end), (EOI, data.len()));
        // Each segment starts with FF and its code; the ones before the scan tile the header.
        for s in &segs {
            assert_eq!(&data[s.start..s.start + 2], &[0xFF, s.marker]);
        }
        let sos = segs.iter().position(|s| s.marker == SOS).unwrap();
        for pair in segs[..=sos].windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }

    #[test]
    fn fill_bytes_stuffing_and_restarts_are_skipped() {
        // SOI, fill bytes before APP0, SOS with data holding a stuffed FF and RST0, then EOI.
        let data = [
            0xFF, SOI, 0xFF, 0xFF, 0xE0, 0x00, 0x03, 0xAA, 0xFF, SOS, 0x00, 0x02, 0x12, 0xFF, 0x00,
            0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, EOI,
        ];
        let segs: Vec<Segment> = segments(&data, 0).map(Result::unwrap).collect();
        assert_eq!(
            segs,
            vec![
                Segment {
                    marker: 0xE0,
                    start: 3,
                    end: 8
                },
                Segment {
                    marker: SOS,
                    start: 8,
                    end: 12
                },
                Segment {
                    marker: EOI,
                    start: 20,
                    end: 22
                },
            ]
        );
    }

    #[test]
    fn every_cut_of_an_image_is_an_error_never_a_panic() {
        let data = jpeg();
        for cut in 2..data.len() - 1 {
            let last = segments(&data[..cut], 0).last().unwrap();
            assert!(
                matches!(last, Err(SegmentError::Truncated(_))),
                "cut at {cut}: {last:?}"
            );
        }
    }

    #[test]
    fn broken_structure_is_malformed() {
        let bad = |data: &[u8]| segments(data, 0).find_map(Result::err);
        assert_eq!(
            bad(&[0xFF, SOI, 0x12, 0x34]),
            Some(SegmentError::Malformed(
                "expected a marker between segments"
            ))
        );
        assert_eq!(
            bad(&[0xFF, SOI, 0xFF, 0xE0, 0x00, 0x01]),
            Some(SegmentError::Malformed("segment length below 2"))
        );
        assert_eq!(
            bad(&[0xFF, SOI, 0xFF, 0x00]),
            Some(SegmentError::Malformed(
                "stuffed byte where a marker belongs"
            ))
        );
        assert!(starts_with_soi(&[0xFF, SOI]) && !starts_with_soi(b"GIF89a"));
    }
}
