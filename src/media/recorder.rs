//! Call recording to WAV (hound): 8 kHz, 16-bit, stereo with the caller on the left and
//! the other leg on the right. Samples are written as the call goes (never buffered
//! whole); the header is brought up to date every few seconds and finalised on hangup,
//! and `repair` fixes the header of a file a crash left open, so nothing written is lost.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const RATE: u32 = 8000;
/// Bring the header up to date every this many frames (5 s).
const FLUSH_EVERY: u64 = 5 * RATE as u64;

pub struct Recorder {
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    path: PathBuf,
    frames: u64,
    since_flush: u64,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder, hound::Error> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Recorder {
            writer: Some(hound::WavWriter::create(path, spec)?),
            path: path.to_path_buf(),
            frames: 0,
            since_flush: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / RATE as f64
    }

    /// Writes one stretch of audio; the shorter side is padded with silence.
    pub fn write(&mut self, caller: &[i16], other: &[i16]) -> Result<(), hound::Error> {
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let n = caller.len().max(other.len());
        // hound's 16-bit writer: the block in one buffer, one write (sample by sample
        // was a tenth of the media task's CPU).
        let mut sw = w.get_i16_writer(2 * n as u32);
        for i in 0..n {
            sw.write_sample(caller.get(i).copied().unwrap_or(0));
            sw.write_sample(other.get(i).copied().unwrap_or(0));
        }
        sw.flush()?;
        self.frames += n as u64;
        self.since_flush += n as u64;
        if self.since_flush >= FLUSH_EVERY {
            w.flush()?;
            self.since_flush = 0;
        }
        Ok(())
    }

    /// Finalises the header and closes the file.
    pub fn finish(mut self) -> Result<PathBuf, hound::Error> {
        if let Some(w) = self.writer.take() {
            w.finalize()?;
        }
        Ok(self.path.clone())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = w.finalize();
        }
    }
}

/// Fixes the RIFF and data sizes of a WAV file whose header lags behind its data (the
/// process died before finalising). Returns true when the file was changed.
pub fn repair(path: &Path) -> std::io::Result<bool> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 12];
    if len < 12
        || f.read_exact(&mut head).is_err()
        || &head[0..4] != b"RIFF"
        || &head[8..12] != b"WAVE"
    {
        return Ok(false);
    }
    // Walk the chunks to "fmt " (block align) and "data".
    let mut pos = 12u64;
    let mut block_align = 1u64;
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let mut ch = [0u8; 8];
        f.read_exact(&mut ch)?;
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as u64;
        if &ch[0..4] == b"fmt " {
            let mut fmt = [0u8; 16];
            f.read_exact(&mut fmt)?;
            block_align = u16::from_le_bytes([fmt[12], fmt[13]]).max(1) as u64;
        } else if &ch[0..4] == b"data" {
            let data_start = pos + 8;
            let data_len = (len - data_start) / block_align * block_align;
            if data_len == size
                && len - 8 == u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64
            {
                return Ok(false);
            }
            f.set_len(data_start + data_len)?;
            f.seek(SeekFrom::Start(pos + 4))?;
            f.write_all(&(data_len as u32).to_le_bytes())?;
            f.seek(SeekFrom::Start(4))?;
            f.write_all(&((data_start + data_len - 8) as u32).to_le_bytes())?;
            f.sync_all()?;
            return Ok(true);
        }
        pos += 8 + size + (size & 1);
    }
    Ok(false)
}

/// Repairs every .wav file under `dir` (at start-up); returns how many were fixed.
pub fn repair_dir(dir: &Path) -> usize {
    repair_dir_files(dir).len()
}

/// As [`repair_dir`], returning the files repaired; empty files (a crash before the
/// first sample) are removed instead.
pub fn repair_dir_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(repair_dir_files(&p));
        } else if p.extension().is_some_and(|x| x == "wav") {
            if std::fs::metadata(&p).is_ok_and(|m| m.len() <= 44) {
                // Nothing recorded (0 bytes, or a header alone): not worth keeping.
                if std::fs::remove_file(&p).is_ok() {
                    tracing::warn!(file = %p.display(), "removed an empty recording left by a crash");
                }
                continue;
            }
            match repair(&p) {
                Ok(true) => {
                    tracing::warn!(file = %p.display(), "repaired a recording left open by a crash");
                    out.push(p);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "cannot repair recording")
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        (spec, r.samples::<i16>().map(|s| s.unwrap()).collect())
    }

    #[test]
    fn stereo_caller_left_other_right() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rec/call-1.wav");
        let mut r = Recorder::create(&p).unwrap();
        r.write(&[1, 2, 3], &[-1, -2]).unwrap();
        r.write(&[4], &[-4]).unwrap();
        assert_eq!(r.seconds(), 4.0 / 8000.0);
        r.finish().unwrap();
        let (spec, s) = read(&p);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(s, vec![1, -1, 2, -2, 3, 0, 4, -4]);
    }

    #[test]
    fn a_file_left_open_by_a_crash_is_repaired_without_losing_samples() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("call-2.wav");
        let mut r = Recorder::create(&p).unwrap();
        let tone: Vec<i16> = (0..8000).map(|i| ((i % 80) * 100) as i16).collect();
        r.write(&tone, &tone).unwrap();
        r.finish().unwrap();
        // More audio reached the disk after the last header update, then the process died.
        let extra: Vec<u8> = (0..2000i16)
            .flat_map(|i| [i.to_le_bytes(), (-i).to_le_bytes()])
            .flatten()
            .chain([0x7f])
            .collect();
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&extra)
            .unwrap();
        assert_eq!(read(&p).1.len(), 16_000, "a stale header hides the tail");
        assert_eq!(repair_dir(dir.path()), 1);
        let (_, s) = read(&p);
        assert_eq!(
            s.len(),
            16_000 + 4_000,
            "every whole frame is back; the torn byte is cut"
        );
        assert_eq!(&s[16_000..16_004], &[0, 0, 1, -1]);
        assert!(!repair(&p).unwrap(), "a sound file is left alone");
        std::fs::write(dir.path().join("junk.wav"), b"not a wav").unwrap();
        assert!(!repair(&dir.path().join("junk.wav")).unwrap());
    }
}
