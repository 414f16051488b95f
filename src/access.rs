//! Per-route rules of forward authentication, without a rules language: `allowed_groups` and
//! `allowed_users` in the query of `/verify` (oauth2-proxy's names), each proxy location setting
//! its own. Read strictly (each once, spelt literally, bounded) and judged against a token's
//! claims. Plain Rust, no HTTP types.

use crate::tokens::Claims;

/// The parameter naming the groups allowed through (any one of them is enough).
pub const ALLOWED_GROUPS: &str = "allowed_groups";
/// The parameter naming the users allowed through.
pub const ALLOWED_USERS: &str = "allowed_users";
/// Most names one rule may list.
pub const MAX_RULE_NAMES: usize = 256;

/// The rules of one `/verify` request: who may pass besides holding a valid token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    groups: Option<Vec<String>>,
    users: Option<Vec<String>>,
}

/// A query whose rules cannot be read one way only: a rule given twice, a rule's name written
/// with escapes (`allowed%5Fgroups`), or more than [`MAX_RULE_NAMES`] names in one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("allowed_groups / allowed_users given twice, escaped or too long")]
pub struct BadRules;

impl Rules {
    /// The rules in `query` (the query of `/verify` itself, which the proxy's configuration
    /// sets). Other parameters are left alone. Names in a rule are comma-separated, URL-decoded,
    /// with blanks around them and empty items ignored; a rule that names nobody lets nobody
    /// through, so that a template that left it empty fails closed.
    pub fn parse(query: Option<&str>) -> Result<Self, BadRules> {
        let mut rules = Self::default();
        let Some(query) = query else {
            return Ok(rules);
        };
        // Pair by pair, so that each decoded name is seen beside its raw spelling.
        for raw in query.split('&') {
            let Some((name, value)) = form_urlencoded::parse(raw.as_bytes()).next() else {
                continue;
            };
            let slot = match name.as_ref() {
                ALLOWED_GROUPS => &mut rules.groups,
                ALLOWED_USERS => &mut rules.users,
                _ => continue,
            };
            // A proxy, a log reader or another check that does not decode names would not see
            // this rule at all: refused, rather than read one way here and another there.
            if raw.split_once('=').map_or(raw, |(k, _)| k) != name {
                return Err(BadRules);
            }
            if slot.is_some() {
                return Err(BadRules);
            }
            let names: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .take(MAX_RULE_NAMES + 1)
                .map(str::to_owned)
                .collect();
            if names.len() > MAX_RULE_NAMES {
                return Err(BadRules);
            }
            *slot = Some(names);
        }
        Ok(rules)
    }

    /// Whether the holder of `claims` may pass: in one of the allowed groups when groups are
    /// named, and one of the allowed users when users are named (both, when both are).
    pub fn allow(&self, claims: &Claims) -> bool {
        let groups_ok = self
            .groups
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|g| claims.in_group(g)));
        let users_ok = self.users.as_ref().is_none_or(|allowed| {
            claims
                .subject()
                .is_some_and(|user| allowed.iter().any(|u| u == user))
        });
        groups_ok && users_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: &str, groups: &[&str]) -> Claims {
        Claims {
            user: None,
            sub: Some(user.to_owned()),
            iat: None,
            exp: 0,
            nbf: None,
            iss: None,
            aud: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            sid: None,
            auth_time: None,
        }
    }

    fn rules(q: &str) -> Result<Rules, BadRules> {
        Rules::parse(Some(q))
    }

    #[test]
    fn no_rules_let_every_valid_token_through() {
        let r = Rules::parse(None).unwrap();
        assert!(r.allow(&claims("alice", &[])));
        assert!(
            rules("token=x&other=1")
                .unwrap()
                .allow(&claims("alice", &[]))
        );
    }

    #[test]
    fn groups_any_of_users_any_of_both_must_hold() {
        let admins = rules("allowed_groups=admins,ops").unwrap();
        assert!(admins.allow(&claims("alice", &["ops"])));
        assert!(!admins.allow(&claims("alice", &["dev"])));
        assert!(!admins.allow(&claims("alice", &[])));
        let users = rules("allowed_users=alice,%20bob").unwrap();
        assert!(users.allow(&claims("bob", &[])));
        assert!(!users.allow(&claims("carol", &["admins"])));
        let both = rules("allowed_users=alice&allowed_groups=admins").unwrap();
        assert!(both.allow(&claims("alice", &["admins"])));
        assert!(!both.allow(&claims("alice", &[])));
        assert!(!both.allow(&claims("bob", &["admins"])));
    }

    #[test]
    fn an_empty_rule_lets_nobody_through() {
        for q in [
            "allowed_groups=",
            "allowed_groups",
            "allowed_users=,,",
            "allowed_groups=%20",
        ] {
            let r = rules(q).unwrap();
            assert!(!r.allow(&claims("alice", &["admins"])), "{q}");
        }
    }

    #[test]
    fn repeated_escaped_or_huge_rules_are_refused() {
        for q in [
            "allowed_groups=a&allowed_groups=b",
            "allowed_groups=a&allowed_groups=a",
            "allowed%5Fgroups=admins",
            "allowed_groups=a&&allowed%5Fgroups=b",
            "allowed_user%73=alice",
            "allowed+users=x&allowed_users=y",
        ] {
            // `allowed+users` decodes to `allowed users`: not a rule, but the second is one.
            if q.starts_with("allowed+") {
                assert!(rules(q).is_ok(), "{q}");
                continue;
            }
            assert_eq!(rules(q), Err(BadRules), "{q}");
        }
        let many = format!("allowed_groups={}", vec!["g"; MAX_RULE_NAMES + 1].join(","));
        assert_eq!(rules(&many), Err(BadRules));
        let enough = format!("allowed_groups={}", vec!["g"; MAX_RULE_NAMES].join(","));
        assert!(rules(&enough).is_ok());
    }
}
