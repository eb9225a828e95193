//! Gateway API durations (`1h30m`, `500ms`: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
//! as whole seconds, the unit of the plugin config.

/// Parses a Gateway API duration into whole seconds, rounding up so that a
/// timeout is never shortened. `None` when the text is not a valid duration.
pub fn seconds(text: &str) -> Option<u64> {
    let mut ms: u64 = 0;
    let mut rest = text;
    let mut parts = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return None;
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().ok()?;
        let (unit_ms, tail) = if let Some(t) = tail.strip_prefix("ms") {
            (1, t)
        } else if let Some(t) = tail.strip_prefix('h') {
            (3_600_000, t)
        } else if let Some(t) = tail.strip_prefix('m') {
            (60_000, t)
        } else if let Some(t) = tail.strip_prefix('s') {
            (1_000, t)
        } else {
            return None;
        };
        ms = ms.checked_add(n.checked_mul(unit_ms)?)?;
        parts += 1;
        rest = tail;
    }
    if parts > 4 {
        return None;
    }
    Some(ms.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn gateway_api_durations_become_seconds() {
        assert_eq!(seconds("1h30m"), Some(5400));
        assert_eq!(seconds("10s"), Some(10));
        assert_eq!(seconds("1500ms"), Some(2));
        assert_eq!(seconds("1m1s1ms"), Some(62));
        assert_eq!(seconds("0s"), Some(0));
    }

    #[test]
    fn invalid_durations_are_refused() {
        for bad in ["", "10", "1d", "s", "123456s", "1h1h1h1h1h", "-1s", "1.5s"] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
    }
}
