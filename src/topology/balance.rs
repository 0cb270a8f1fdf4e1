//! Balances: `"5000000 ether"`, `"1.5 ether"`, `"21 gwei"`, `"7 wei"` or integer wei.

use super::model::Wei;

const UNITS: [(&str, u32); 3] = [("ether", 18), ("gwei", 9), ("wei", 0)];

/// A balance as topology files write it: `100ether` (as typed on a command line) and
/// `100  Ether` are `100 ether`; anything else is returned trimmed, as it is.
pub fn balance_text(s: &str) -> String {
    let t = s.trim();
    match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) if i > 0 => {
            let (number, unit) = (t[..i].trim_end(), t[i..].trim());
            match UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) {
                Some((u, _)) if !number.contains(char::is_whitespace) => format!("{number} {u}"),
                _ => t.to_string(),
            }
        }
        _ => t.to_string(),
    }
}

/// Parses `<decimal> ether|gwei|wei` or a whole number of wei. Exact: no rounding, no
/// exponent, at most as many decimals as the unit has. The error says what is wrong
/// (without repeating the input) so callers can place it.
pub fn parse_balance(s: &str) -> Result<Wei, String> {
    let spaced = balance_text(s);
    let s = spaced.as_str();
    let mut parts = s.split_whitespace();
    let (Some(number), unit, None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(if s.trim().is_empty() {
            "the balance is empty".to_string()
        } else {
            "a balance is a number and a unit, like \"5000000 ether\"".to_string()
        });
    };
    let decimals = match unit {
        None => 0,
        Some(u) => match UNITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(u)) {
            Some((_, d)) => *d,
            None => return Err(format!("unknown unit {u:?} (use ether, gwei or wei)")),
        },
    };
    let unit_name = unit.map(|u| u.to_ascii_lowercase());
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let is_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if number.starts_with('-') {
        return Err("a balance cannot be negative".to_string());
    }
    if !is_digits(whole) || (number.contains('.') && !is_digits(frac)) {
        return Err(format!("{number:?} is not a decimal number"));
    }
    if frac.len() > decimals as usize {
        return Err(match unit_name.as_deref() {
            None | Some("wei") => {
                "wei cannot be fractional (add a unit, like \"1.5 ether\")".to_string()
            }
            Some(u) => format!("{u} has at most {decimals} decimal places"),
        });
    }
    let too_big = || "the balance is too large (the limit is 2^128 - 1 wei)".to_string();
    let scale = 10u128.pow(decimals);
    let w: u128 = whole.parse().map_err(|_| too_big())?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        let pad = 10u128.pow(decimals - frac.len() as u32);
        frac.parse::<u128>().map_err(|_| too_big())? * pad
    };
    w.checked_mul(scale)
        .and_then(|v| v.checked_add(f))
        .map(Wei)
        .ok_or_else(too_big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_decimals_and_plain_wei() {
        assert_eq!(
            parse_balance("5000000 ether"),
            Ok(Wei(5_000_000 * Wei::ETHER))
        );
        assert_eq!(parse_balance("1.5 ether"), Ok(Wei(Wei::ETHER * 3 / 2)));
        assert_eq!(parse_balance("21 gwei"), Ok(Wei(21 * Wei::GWEI)));
        assert_eq!(parse_balance("0.000000001 gwei"), Ok(Wei(1)));
        assert_eq!(parse_balance("0.0000000001 gwei").ok(), None);
        assert_eq!(parse_balance("0.000000001 ether"), Ok(Wei(Wei::GWEI)));
        assert_eq!(parse_balance("7 wei"), Ok(Wei(7)));
        assert_eq!(parse_balance("1000"), Ok(Wei(1000)));
        assert_eq!(parse_balance("  3   Ether "), Ok(Wei(3 * Wei::ETHER)));
        assert_eq!(parse_balance("0 ether"), Ok(Wei(0)));
        assert_eq!(parse_balance("100ether"), Ok(Wei(100 * Wei::ETHER)));
        assert_eq!(balance_text("100ether"), "100 ether");
        assert_eq!(balance_text(" 1.5Gwei "), "1.5 gwei");
        assert_eq!(balance_text("3   Ether"), "3 ether");
        assert_eq!(balance_text("1000"), "1000");
        assert_eq!(balance_text("ten ether"), "ten ether");
        assert_eq!(parse_balance("1.5Gwei"), Ok(Wei(1_500_000_000)));
        assert_eq!(
            parse_balance("340282366920938463463374607431768211455"),
            Ok(Wei(u128::MAX))
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        let err = |s: &str| parse_balance(s).unwrap_err();
        assert_eq!(err(""), "the balance is empty");
        assert_eq!(
            err("5 eth"),
            "unknown unit \"eth\" (use ether, gwei or wei)"
        );
        assert_eq!(err("-5 ether"), "a balance cannot be negative");
        assert_eq!(err("1e21"), "\"1e21\" is not a decimal number");
        assert_eq!(err(".5 ether"), "\".5\" is not a decimal number");
        assert_eq!(err("5. ether"), "\"5.\" is not a decimal number");
        assert_eq!(
            err("1.5"),
            "wei cannot be fractional (add a unit, like \"1.5 ether\")"
        );
        assert_eq!(
            err("1.0000000001 gwei"),
            "gwei has at most 9 decimal places"
        );
        assert_eq!(
            err("5 ether please"),
            "a balance is a number and a unit, like \"5000000 ether\""
        );
        assert!(err("340282366920938463463374607431768211456").contains("too large"));
        assert!(err("340282366920938463464 ether").contains("too large"));
        assert!(err("99999999999999999999999999999999999999999.5 ether").contains("too large"));
    }
}
