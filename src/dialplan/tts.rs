//! Text to speech for `say`, through espeak-ng when it is installed. A flow that uses
//! `say` on a machine without it is refused at load time (see `decode`), so this never
//! fails silently during a call. Synthesis runs a process: callers run it off the
//! actor's thread (`spawn_blocking`) and cache what they can.

use crate::media::player::{resample, Samples};
use std::process::Command;

pub const ENGINE: &str = "espeak-ng";

/// Whether espeak-ng can be run.
pub fn available() -> bool {
    Command::new(ENGINE)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Speaks `text` as 8 kHz mono audio.
pub fn synthesize(text: &str) -> Result<Samples, String> {
    let out = Command::new(ENGINE)
        .args(["-s", "160", "--stdout", "--", text])
        .output()
        .map_err(|e| format!("{ENGINE}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{ENGINE} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    decode_stream_wav(&out.stdout).ok_or_else(|| format!("{ENGINE}: unreadable audio"))
}

/// [`synthesize`] with a small cache: announcements and static `say` texts repeat.
pub fn cached(text: &str) -> Result<Samples, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Samples>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.lock().unwrap().get(text) {
        return Ok(s.clone());
    }
    let s = synthesize(text)?;
    let mut c = cache.lock().unwrap();
    if c.len() >= 256 {
        c.clear();
    }
    c.insert(text.to_string(), s.clone());
    Ok(s)
}

/// espeak-ng's `--stdout` WAV has placeholder sizes (it streams), so read the format and
/// take every 16-bit sample after the `data` tag.
fn decode_stream_wav(b: &[u8]) -> Option<Samples> {
    if b.len() < 44 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let mut i = 12;
    let mut rate = 22050u32;
    let mut channels = 1usize;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        if id == b"fmt " && i + 16 <= b.len() {
            channels = u16::from_le_bytes([b[i + 10], b[i + 11]]).max(1) as usize;
            rate = u32::from_le_bytes([b[i + 12], b[i + 13], b[i + 14], b[i + 15]]);
        }
        if id == b"data" {
            let pcm = &b[i + 8..];
            let mono: Vec<f32> = pcm
                .chunks_exact(2 * channels)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                .collect();
            if mono.is_empty() || rate == 0 {
                return None;
            }
            let out = resample(&mono, rate, 8000);
            return Some(
                out.iter()
                    .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        i += 8 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_streamed_wav() {
        let mut w = b"RIFF\xff\xff\xff\x7fWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\xff\xff\xff\x7f".to_vec();
        for i in 0..160i16 {
            w.extend_from_slice(&(i * 100).to_le_bytes());
        }
        let s = super::decode_stream_wav(&w).unwrap();
        assert_eq!(s.len(), 160);
        assert_eq!(s[10], 1000);
        assert!(super::decode_stream_wav(b"junk").is_none());
    }
}
