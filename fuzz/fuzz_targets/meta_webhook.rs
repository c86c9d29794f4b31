//! Any bytes into the Meta webhook normaliser, with and without text capture: it must never panic, and
//! what it returns must hold together.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nikara::engagement::meta::normalize_meta;

fuzz_target!(|body: &[u8]| {
    let without = normalize_meta(body, false);
    let with = normalize_meta(body, true);
    match (without, with) {
        (Ok(without), Ok(with)) => {
            assert_eq!(without.facts.len(), with.facts.len(), "text capture changes text only");
            assert_eq!(without.unknown, with.unknown);
            for (i, (a, b)) in without.facts.iter().zip(&with.facts).enumerate() {
                assert_eq!(a.item_index as usize, i, "facts are numbered from 0 in order");
                assert!(a.text.is_none(), "no text without capture");
                assert_eq!(
                    (a.kind, a.delta, &a.platform_post_id),
                    (b.kind, b.delta, &b.platform_post_id)
                );
                assert!(!a.account_external_id.is_empty());
                assert!((-1..=1).contains(&a.delta));
            }
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("capture_text changed the outcome: {a:?} vs {b:?}"),
    }
});
