//! How guessable a secret is: zxcvbn finds the patterns (dictionary words, keyboard walks,
//! repeats, sequences, dates), and this module counts the bits an attacker who knows them needs.
//!
//! zxcvbn's own total is a `u64` of guesses: it saturates at 2^64, where every secret longer than
//! about 20 characters ends up (a seven-word sentence included), and its scores top out at 10^10
//! guesses, sized for online attacks on passwords. An HMAC key is attacked offline, at billions
//! of guesses a second per GPU, so we take zxcvbn's matches and add up their costs in `f64` bits:
//! windows short enough never to saturate find the words of a long secret, the whole secret finds
//! its long repeats, and the cheapest cover of the secret by those matches and by unmatched
//! characters (priced by their character classes) is the estimate.

use zxcvbn::matching::patterns::MatchPattern;

/// Characters of the windows given to zxcvbn. At 10 guesses a character (its brute-force price)
/// a 16-character window stays below 2^64, so zxcvbn still picks the cheapest patterns in it;
/// 32-character windows find repeats of a longer unit (`not-the-secret-not-the-secret-`), whose
/// low price keeps them below 2^64 too. Windows of a size overlap by half, so that every pattern
/// of up to half a window lies whole in one.
const WINDOWS: [usize; 2] = [16, 32];
/// zxcvbn looks at this many characters and no more (its own bound against slow inputs); we
/// judge the same prefix, which for a secret worth having is already well past the floor.
const JUDGED_CHARS: usize = 100;

/// Estimated bits of guessing work for `secret`'s first [`JUDGED_CHARS`] characters.
pub(crate) fn estimated_bits(secret: &str) -> f64 {
    let chars: Vec<char> = secret.chars().take(JUDGED_CHARS).collect();
    let n = chars.len();
    if n == 0 {
        return 0.0;
    }
    // Every pattern zxcvbn picks: in the whole secret (long repeats), and in each window (the
    // words of a long secret, which the whole secret's saturated total hides).
    let mut patterns: Vec<(usize, usize, f64)> = Vec::new();
    let mut harvest = |start: usize, end: usize| {
        let piece: String = chars[start..end].iter().collect();
        for m in zxcvbn::zxcvbn(&piece, &[]).sequence() {
            if matches!(m.pattern, MatchPattern::BruteForce) || m.j < m.i {
                continue;
            }
            let guesses = m.guesses.unwrap_or(u64::MAX).max(1);
            // zxcvbn's `i..=j` index characters of `piece`.
            if start + m.j < n {
                patterns.push((start + m.i, start + m.j + 1, (guesses as f64).log2()));
            }
        }
    };
    harvest(0, n);
    for window in WINDOWS.into_iter().filter(|&w| w < n) {
        let mut start = 0;
        loop {
            let end = (start + window).min(n);
            harvest(start, end);
            if end == n {
                break;
            }
            start += window / 2;
        }
    }
    // Cheapest cover: `best[k]` is the fewest bits that explain the first `k` characters.
    let per_char = brute_force_bits_per_char(&chars);
    let mut best = vec![f64::INFINITY; n + 1];
    best[0] = 0.0;
    for k in 1..=n {
        best[k] = best[k - 1] + per_char;
        for &(i, _, bits) in patterns.iter().filter(|p| p.1 == k) {
            best[k] = best[k].min(best[i] + bits);
        }
    }
    best[n]
}

/// Bits of one character guessed blind, from the classes the secret draws on: digits (10),
/// lower case (26), upper case (26), other ASCII (33), anything else (100).
fn brute_force_bits_per_char(chars: &[char]) -> f64 {
    let has = |class: fn(&char) -> bool| chars.iter().any(class);
    let cardinality = [
        (has(char::is_ascii_digit), 10),
        (has(char::is_ascii_lowercase), 26),
        (has(char::is_ascii_uppercase), 26),
        (has(|c| c.is_ascii() && !c.is_ascii_alphanumeric()), 33),
        (has(|c| !c.is_ascii()), 100),
    ]
    .iter()
    .filter(|(present, _)| *present)
    .map(|&(_, size)| size)
    .sum::<u32>();
    f64::from(cardinality.max(2)).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_secrets_score_near_their_real_entropy() {
        use base64::Engine as _;
        for _ in 0..50 {
            let mut bytes = [0u8; 48];
            getrandom::fill(&mut bytes).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            assert!(estimated_bits(&b64) > 300.0, "{b64}");
        }
    }

    #[test]
    fn words_repeats_sequences_and_walks_score_low() {
        for s in [
            "correct horse battery staple is a password",
            "passwordpasswordpasswordpassword1234",
            "01234567890123456789012345678901",
            "abcdefghabcdefghabcdefghabcdefgh",
            "qwertyuiopasdfghjklzxcvbnm123456",
            "Tr0ub4dor&3Tr0ub4dor&3Tr0ub4dor&3",
            "not-the-secret-not-the-secret-not-the-secret",
            "mysupersecretjwtsigningkeyforproduction",
        ] {
            let bits = estimated_bits(s);
            assert!(bits < crate::config::MIN_SECRET_BITS, "{s}: {bits}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_text_gets_a_finite_estimate_without_panicking(s in "\\PC{0,120}") {
            let bits = estimated_bits(&s);
            proptest::prop_assert!(bits.is_finite() && bits >= 0.0);
        }
    }
}
