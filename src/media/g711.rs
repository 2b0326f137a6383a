//! G.711 µ-law and A-law (ITU-T G.711), sample by sample, plus transcoding between
//! the two through linear PCM. Decoding uses 256-entry tables built at compile time.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Linear 16-bit PCM to µ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = if s > CLIP { CLIP } else { s } + BIAS;
    // The segment is the highest set bit of bits 7..=14 (s is at least BIAS, 0x84, and
    // at most 0x7FFF): one instruction instead of a loop, on the media hot path.
    let exp = 24 - (s as u32).leading_zeros() as i32;
    let mantissa = (s >> (exp + 3)) & 0x0F;
    !(sign | (exp << 4) | mantissa) as u8
}

/// µ-law to linear 16-bit PCM.
pub const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exp = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let mag = (((mantissa << 3) + BIAS) << exp) - BIAS;
    if sign != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// Linear 16-bit PCM to A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    s = (if s > 0x7FFF { 0x7FFF } else { s }) >> 3;
    let out = if s < 32 {
        (s >> 1) as u8
    } else {
        // Segments 1..=7 by the highest set bit (bit 5 for 32..=63; s < 4096).
        let exp = 27 - (s as u32).leading_zeros() as i32;
        ((exp << 4) | ((s >> exp) & 0x0F)) as u8
    };
    (out | sign) ^ 0x55
}

/// A-law to linear 16-bit PCM.
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exp = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let mag = if exp == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exp - 1)
    };
    if sign != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_to_linear(i as u8)
        } else {
            alaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW: [i16; 256] = table(true);
static ALAW: [i16; 256] = table(false);

const fn cross(ulaw_to_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw_to_alaw {
            linear_to_alaw(ulaw_to_linear(i as u8))
        } else {
            linear_to_ulaw(alaw_to_linear(i as u8))
        };
        i += 1;
    }
    t
}

static U2A: [u8; 256] = cross(true);
static A2U: [u8; 256] = cross(false);

/// Decodes a µ-law payload into `out` (cleared first).
pub fn decode_ulaw(payload: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(payload.iter().map(|&b| ULAW[b as usize]));
}

/// Decodes an A-law payload into `out` (cleared first).
pub fn decode_alaw(payload: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(payload.iter().map(|&b| ALAW[b as usize]));
}

/// µ-law payload to A-law, in place.
pub fn ulaw_to_alaw(buf: &mut [u8]) {
    for b in buf {
        *b = U2A[*b as usize];
    }
}

/// A-law payload to µ-law, in place.
pub fn alaw_to_ulaw(buf: &mut [u8]) {
    for b in buf {
        *b = A2U[*b as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoders as first written (a loop finds the segment), for comparison.
    fn ulaw_by_loop(sample: i16) -> u8 {
        let mut s = sample as i32;
        let sign = if s < 0 { 0x80 } else { 0 };
        if s < 0 {
            s = -s;
        }
        s = if s > CLIP { CLIP } else { s } + BIAS;
        let mut exp = 7;
        let mut mask = 0x4000;
        while exp > 0 && s & mask == 0 {
            exp -= 1;
            mask >>= 1;
        }
        !(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F)) as u8
    }

    fn alaw_by_loop(sample: i16) -> u8 {
        let mut s = sample as i32;
        let sign = if s >= 0 { 0x80 } else { 0 };
        if s < 0 {
            s = -s - 1;
        }
        s = (if s > 0x7FFF { 0x7FFF } else { s }) >> 3;
        let out = if s < 32 {
            (s >> 1) as u8
        } else {
            let mut exp = 1;
            while exp < 7 && s >= (64 << (exp - 1)) {
                exp += 1;
            }
            ((exp << 4) | ((s >> exp) & 0x0F)) as u8
        };
        (out | sign) ^ 0x55
    }

    #[test]
    fn the_encoders_agree_with_the_segment_loop_on_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(s), ulaw_by_loop(s), "µ-law {s}");
            assert_eq!(linear_to_alaw(s), alaw_by_loop(s), "A-law {s}");
        }
    }

    #[test]
    fn silence_and_known_codes() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            // µ-law 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "µ-law code {c:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law code {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_a_step() {
        for s in (-32_000i32..32_000).step_by(7) {
            let s = s as i16;
            let u = ulaw_to_linear(linear_to_ulaw(s)) as i32;
            let a = alaw_to_linear(linear_to_alaw(s)) as i32;
            let tol = (s as i32).abs() / 16 + 16;
            assert!((u - s as i32).abs() <= tol, "µ-law {s} -> {u}");
            assert!((a - s as i32).abs() <= tol, "A-law {s} -> {a}");
        }
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        let src: Vec<u8> = (0..=255u8).collect();
        let mut buf = src.clone();
        ulaw_to_alaw(&mut buf);
        alaw_to_ulaw(&mut buf);
        for (a, b) in src.iter().zip(&buf) {
            let (x, y) = (ulaw_to_linear(*a) as i32, ulaw_to_linear(*b) as i32);
            assert!(
                (x - y).abs() <= x.abs() / 8 + 16,
                "{a:#x} -> {b:#x}: {x} vs {y}"
            );
        }
    }
}
