//! Names of networks, members and accounts: the rule, a suggestion, uniqueness.

use super::Ctx;
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------
// Semantic checks

/// `Ok` or why `s` is not a valid network/member/account name.
pub fn check_name(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    let first = s.chars().next();
    if n == 0 {
        return Err("it is empty".into());
    }
    if !first.is_some_and(|c| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "it contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if n < 2 {
        return Err("it is shorter than 2 characters".into());
    }
    if n > 24 {
        return Err(format!("it is {n} characters long; the limit is 24"));
    }
    if s.ends_with('-') {
        return Err("it must not end with '-'".into());
    }
    Ok(())
}

/// A valid name close to `s`, if one is easy to derive (`Contoso Ltd` -> `contoso-ltd`).
pub fn suggest_name(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let start = out.find(|c: char| c.is_ascii_lowercase())?;
    let mut out: String = out[start..].chars().take(24).collect();
    while out.ends_with('-') {
        out.pop();
    }
    (check_name(&out).is_ok() && out != s).then_some(out)
}

const NAME_RULE: &str = "names are 2 to 24 characters: a lowercase letter first, then lowercase letters, digits or '-' (not at the end)";

pub(super) fn check_named(ctx: &mut Ctx, path: &str, kind: &str, name: &str) -> bool {
    match check_name(name) {
        Ok(()) => true,
        Err(why) => {
            let help = match suggest_name(name) {
                Some(s) => format!("{NAME_RULE}; for example \"{s}\""),
                None => NAME_RULE.to_string(),
            };
            ctx.error(path, format!("invalid {kind} name {name:?}: {why}"), help);
            false
        }
    }
}

/// Records `name` at `path`; reports it if an earlier entry used it.
pub(super) fn check_unique(
    ctx: &mut Ctx,
    seen: &mut HashMap<String, String>,
    path: &str,
    kind: &str,
    scope: &str,
    name: &str,
) {
    if let Some(first) = seen.get(name) {
        let first_line = ctx
            .index
            .value_exact(first)
            .map_or_else(String::new, |p| format!(" (line {})", p.line));
        ctx.error(
            path,
            format!("duplicate {kind} name {name:?}{scope}"),
            format!(
                "{name:?} is already used by {first}{first_line}; {kind} names must be unique{scope}: rename or remove one"
            ),
        );
    } else {
        seen.insert(name.to_string(), path.to_string());
    }
}
