//! Checks across sections: the funding account names a member and one of its accounts.

use super::Ctx;
use crate::topology::model::Member;

pub(super) fn check_funding(ctx: &mut Ctx, spec: &str, members: &[Member]) {
    const PATH: &str = "network.funding_account";
    let Some((m, a)) = spec
        .split_once('/')
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
    else {
        ctx.error(
            PATH,
            format!("funding_account {spec:?} is not of the form <member>/<account>"),
            Some(
                "name a member and one of its accounts, e.g. `funding_account: contoso/treasury`"
                    .to_string(),
            ),
        );
        return;
    };
    let list = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    match members.iter().find(|x| x.name == m) {
        None => ctx.error(
            PATH,
            format!("funding_account {spec:?} names no existing member {m:?}"),
            Some(format!("members: {}", {
                let mut names: Vec<&str> = members.iter().map(|x| x.name.as_str()).collect();
                names.dedup();
                list(names)
            })),
        ),
        Some(member)
            if member
                .accounts
                .iter()
                .any(|x| x.name == a && !x.has_key()) =>
        {
            ctx.error(
                PATH,
                format!("funding_account {spec:?} is an `address:` account, whose key consort does not hold"),
                Some("the funding account signs transfers, so it must be an account consort generated (no `address:`); name another".to_string()),
            )
        }
        Some(member) if !member.accounts.iter().any(|x| x.name == a) => ctx.error(
            PATH,
            format!("funding_account {spec:?}: member {m:?} has no account {a:?}"),
            Some(format!(
                "accounts of {m:?}: {}; add the account or name another",
                list(member.accounts.iter().map(|x| x.name.as_str()).collect())
            )),
        ),
        Some(_) => {}
    }
}
