//! Reading and writing NumPy `.npy` files (little-endian, C order) for `edgeinfer infer`.

use crate::durable::FileError;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::{DatumType, Tensor};

/// Why an .npy file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// File system error.
    #[error(transparent)]
    Io(#[from] FileError),
    /// The file is not a valid .npy of a supported kind.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element types supported, with their numpy `descr`.
const TYPES: &[(&str, DatumType)] = &[
    ("<f4", DatumType::F32),
    ("<f8", DatumType::F64),
    ("<i8", DatumType::I64),
    ("<i4", DatumType::I32),
    ("<i2", DatumType::I16),
    ("|i1", DatumType::I8),
    ("|u1", DatumType::U8),
    ("|b1", DatumType::Bool),
];

/// Reads an .npy file into a tensor.
pub fn read(path: &Path) -> Result<Tensor, NpyError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(FileError::at(path))?;
    parse(&bytes).map_err(|message| NpyError::Format {
        path: path.into(),
        message,
    })
}

/// Parses .npy bytes into a tensor.
pub fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not an .npy file (bad magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    if fortran.trim() != "False" {
        return Err(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape = parse_shape(header)?;
    let dt = TYPES
        .iter()
        .find(|(d, _)| *d == descr || (d.starts_with('|') && descr[1..] == d[1..]))
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("unsupported dtype {descr}"))?;
    let count: usize = shape.iter().product();
    let data = &bytes[start + header_len..];
    let want = count * dt.size_of();
    if data.len() != want {
        return Err(format!(
            "data is {} bytes, shape {shape:?} of {descr} needs {want}",
            data.len()
        ));
    }
    if dt == DatumType::Bool && data.iter().any(|b| *b > 1) {
        return Err("bool array holds bytes other than 0 and 1".into());
    }
    // SAFETY: `dt` is a plain numeric type, or bool checked above to hold only 0 and 1, and
    // `data` holds exactly `count` elements of it.
    let tensor = unsafe { Tensor::from_raw_dt(dt, &shape, data) }.map_err(|e| e.to_string())?;
    Ok(tensor)
}

/// Writes a tensor as an .npy file.
pub fn write(path: &Path, tensor: &Tensor) -> Result<(), NpyError> {
    let bytes = to_bytes(tensor).map_err(|message| NpyError::Format {
        path: path.into(),
        message,
    })?;
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(FileError::at(path))?;
    Ok(())
}

/// A tensor as the bytes of an .npy file (version 1.0, data aligned to 64 bytes as numpy does).
pub fn to_bytes(tensor: &Tensor) -> Result<Vec<u8>, String> {
    let descr = TYPES
        .iter()
        .find(|(_, t)| *t == tensor.datum_type())
        .map(|(d, _)| *d)
        .ok_or_else(|| format!("cannot write tensors of type {:?}", tensor.datum_type()))?;
    let shape = match tensor.shape() {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that the data starts on a 64-byte boundary, as numpy does.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + tensor.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    // Plain tensors of the types above; the host is little-endian (checked at compile time).
    out.extend_from_slice(tensor.as_bytes());
    Ok(out)
}

#[cfg(not(target_endian = "little"))]
compile_error!("npy support assumes a little-endian target");

fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> Result<Vec<usize>, String> {
    let shape = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("bad 'shape'")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32_and_i64_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_shape(&[2, 3], &[1f32, 2., 3., 4., 5., 6.]).unwrap();
        let p = dir.path().join("a.npy");
        write(&p, &t).unwrap();
        assert_eq!(read(&p).unwrap(), t);
        let t = Tensor::from_shape(&[4], &[1i64, -2, 3, 4]).unwrap();
        write(&p, &t).unwrap();
        assert_eq!(read(&p).unwrap(), t);
        assert_eq!(parse(&to_bytes(&t).unwrap()).unwrap(), t);
        let t = tract_onnx::prelude::tensor0(7.5f64);
        write(&p, &t).unwrap();
        assert_eq!(read(&p).unwrap(), t);
    }

    #[test]
    fn rejects_truncated_data_and_bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::from_shape(&[4], &[1f32, 2., 3., 4.]).unwrap();
        let p = dir.path().join("a.npy");
        write(&p, &t).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        assert!(parse(&bytes).unwrap_err().contains("needs 16"));
        assert!(parse(b"PK\x03\x04not npy").unwrap_err().contains("magic"));
        let mut bools = b"\x93NUMPY\x01\x00".to_vec();
        let header = "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }\n";
        bools.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bools.extend_from_slice(header.as_bytes());
        bools.extend_from_slice(&[1, 7]);
        assert!(parse(&bools).unwrap_err().contains("other than 0 and 1"));
    }

    #[test]
    fn reads_header_written_by_numpy() {
        // np.save of np.arange(3, dtype='<f4'): header exactly as numpy 1.x writes it.
        let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".to_string();
        while header.len() < 117 {
            header.push(' ');
        }
        header.push('\n');
        bytes.extend_from_slice(header.as_bytes());
        for v in [0f32, 1., 2.] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let t = parse(&bytes).unwrap();
        assert_eq!(t.shape(), &[3]);
        let v: Vec<f32> = t
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(v, vec![0., 1., 2.]);
    }
}
