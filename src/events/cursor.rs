//! Cursors as callers see them: opaque strings that sort as the log does (16
//! lowercase hex digits of the event's position), and their parsing.

/// The string form of a position.
pub fn format_cursor(position: u64) -> String {
    format!("{position:016x}")
}

/// Reads a cursor a caller sent back; the error says what is wrong with it.
pub fn parse_cursor(text: &str) -> Result<u64, String> {
    let well_formed = text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(format!(
            "cursor {:?} is not a cursor this daemon issued: send back an Event's `cursor` unchanged",
            truncate(text)
        ));
    }
    u64::from_str_radix(text, 16).map_err(|e| format!("cursor is unreadable: {e}"))
}

/// At most 40 characters of what a caller sent, for an error message.
fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_sort_as_positions_and_read_back() {
        let (small, large) = (format_cursor(9), format_cursor(10));
        assert!(small < large, "{small} sorts before {large}");
        assert!(format_cursor(0xff) < format_cursor(0x100));
        assert_eq!(parse_cursor(&format_cursor(u64::MAX)), Ok(u64::MAX));
        assert_eq!(parse_cursor(&large), Ok(10));
    }

    #[test]
    fn malformed_cursors_are_refused_with_what_to_do() {
        for bad in ["", "12", "000000000000000G", "000000000000000A", " 000000000000001"] {
            let error = parse_cursor(bad).unwrap_err();
            assert!(error.contains("send back an Event's `cursor`"), "{bad:?}: {error}");
        }
    }
}
