//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, §11.2).
//!
//! ```text
//! challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param  = token BWS "=" BWS ( token / quoted-string )
//! ```
//! A header may hold several challenges separated by commas, and a response may
//! carry several headers. Scheme and parameter names are case-insensitive.
//! Parsing follows the grammar, so a `scope=` inside a quoted
//! `error_description` is never read as the scope.

/// One parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// The token68 form, if the challenge used it.
    pub token68: Option<String>,
    /// Parameters with lower-cased names, in order; the first of a repeated
    /// name wins.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem.
    pub position: usize,
    /// What was expected.
    pub message: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed WWW-Authenticate at byte {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for ParseError {}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn skip_ows_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn err(&self, message: &'static str) -> ParseError {
        ParseError {
            position: self.pos,
            message,
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            None
        } else {
            // tchars are ASCII, so this slice is valid UTF-8.
            std::str::from_utf8(&self.s[start..self.pos]).ok()
        }
    }

    fn quoted_string(&mut self) -> Result<String, ParseError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(self.err("unterminated escape in quoted string")),
                        Some(c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
                Some(c) if c < 0x20 && c != b'\t' || c == 0x7f => {
                    return Err(self.err("control character in quoted string"));
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.err("quoted string is not UTF-8"))
    }

    /// At a position after OWS: does a `name =` (not a token68's `=` padding)
    /// start here?
    fn at_param_start(&self) -> bool {
        let mut i = self.pos;
        let start = i;
        while i < self.s.len() && is_tchar(self.s[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        while i < self.s.len() && matches!(self.s[i], b' ' | b'\t') {
            i += 1;
        }
        if i >= self.s.len() || self.s[i] != b'=' {
            return false;
        }
        i += 1;
        while i < self.s.len() && matches!(self.s[i], b' ' | b'\t') {
            i += 1;
        }
        // `name=` followed by a value: a parameter. `abc==` or `abc=` at the end
        // or before a comma is token68 padding.
        i < self.s.len() && (self.s[i] == b'"' || is_tchar(self.s[i])) && self.s[i] != b'='
    }

    fn param(&mut self) -> Result<(String, String), ParseError> {
        let name = self.token().ok_or_else(|| self.err("expected parameter name"))?;
        self.skip_ows();
        if self.peek() != Some(b'=') {
            return Err(self.err("expected '=' after parameter name"));
        }
        self.pos += 1;
        self.skip_ows();
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            Some(c) if is_tchar(c) => self.token().unwrap_or_default().to_string(),
            _ => return Err(self.err("expected parameter value")),
        };
        Ok((name.to_ascii_lowercase(), value))
    }

    fn token68(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_token68_char) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        while self.peek() == Some(b'=') {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).ok().map(str::to_string)
    }
}

/// Parse one `WWW-Authenticate` header value into its challenges.
pub fn parse(header: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut p = Parser {
        s: header.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_ows_and_commas();
        if p.peek().is_none() {
            break;
        }
        let scheme = p.token().ok_or_else(|| p.err("expected an auth scheme"))?.to_string();
        let mut ch = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        let had_space = matches!(p.peek(), Some(b' ' | b'\t'));
        p.skip_ows();
        match p.peek() {
            None | Some(b',') => {}
            Some(_) if !had_space => return Err(p.err("expected a space after the auth scheme")),
            Some(_) if p.at_param_start() => {
                // auth-param list; continues across commas while `name=` follows.
                loop {
                    let (k, v) = p.param()?;
                    if !ch.params.iter().any(|(n, _)| *n == k) {
                        ch.params.push((k, v));
                    }
                    p.skip_ows();
                    match p.peek() {
                        None => break,
                        Some(b',') => {
                            p.skip_ows_and_commas();
                            if p.peek().is_none() || !p.at_param_start() {
                                break;
                            }
                        }
                        Some(_) => return Err(p.err("expected ',' between parameters")),
                    }
                }
            }
            Some(_) => {
                ch.token68 = Some(p.token68().ok_or_else(|| p.err("expected token68 or parameters"))?);
                p.skip_ows();
                match p.peek() {
                    None | Some(b',') => {}
                    Some(_) => return Err(p.err("unexpected data after token68")),
                }
            }
        }
        out.push(ch);
    }
    Ok(out)
}

/// What a Bearer (or DPoP) challenge tells an OAuth client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The scheme that carried it (`Bearer` or `DPoP`).
    pub scheme: String,
    /// RFC 9728 `resource_metadata` URL.
    pub resource_metadata: Option<String>,
    /// Space-separated scopes the resource asks for.
    pub scope: Option<String>,
    /// `invalid_token`, `insufficient_scope`, ...
    pub error: Option<String>,
    /// The server's description of the error.
    pub error_description: Option<String>,
}

/// The challenge an OAuth client acts on among all the `WWW-Authenticate`
/// values of a response: the first `Bearer` or `DPoP` challenge that carries
/// an `error` (`Bearer` before `DPoP`), else the first `Bearer` one, else the
/// first `DPoP` one. A server that takes both schemes may name both (RFC 9449
/// §7.2) and put the error, `use_dpop_nonce` for one, in the `DPoP` challenge
/// only; `resource_metadata` is taken from either. A header that does not
/// parse is skipped (and logged), so one broken header does not hide a good one.
pub fn find_bearer<S: AsRef<str>>(headers: &[S]) -> Option<BearerChallenge> {
    let mut all = Vec::new();
    for h in headers {
        match parse(h.as_ref()) {
            Ok(chs) => all.extend(chs),
            Err(e) => tracing::warn!(error = %e, "ignoring a WWW-Authenticate header that does not parse"),
        }
    }
    let oauth: Vec<&Challenge> = all
        .iter()
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer") || c.scheme.eq_ignore_ascii_case("dpop"))
        .collect();
    // The first of the lowest rank: with an error first, then Bearer first.
    let pick = oauth
        .iter()
        .min_by_key(|c| (c.param("error").is_none(), !c.scheme.eq_ignore_ascii_case("bearer")))?;
    let resource_metadata = pick
        .param("resource_metadata")
        .or_else(|| oauth.iter().find_map(|c| c.param("resource_metadata")));
    Some(BearerChallenge {
        scheme: pick.scheme.clone(),
        resource_metadata: resource_metadata.map(str::to_string),
        scope: pick.param("scope").map(str::to_string),
        error: pick.param("error").map(str::to_string),
        error_description: pick.param("error_description").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// (scheme, token68, params) of one expected challenge.
    type Expected = (&'static str, Option<&'static str>, Vec<(&'static str, &'static str)>);

    #[test]
    fn table() {
        struct Case {
            input: &'static str,
            want: Vec<Expected>,
        }
        let cases = vec![
            Case {
                input: "Bearer",
                want: vec![("Bearer", None, vec![])],
            },
            Case {
                input: r#"Bearer resource_metadata="https://r.example/.well-known/oauth-protected-resource""#,
                want: vec![(
                    "Bearer",
                    None,
                    vec![(
                        "resource_metadata",
                        "https://r.example/.well-known/oauth-protected-resource",
                    )],
                )],
            },
            Case {
                input: r#"bearer Scope="a b", ERROR=insufficient_scope"#,
                want: vec![("bearer", None, vec![("scope", "a b"), ("error", "insufficient_scope")])],
            },
            Case {
                input: r#"Bearer error="invalid_token", error_description="bad scope=\"admin\", retry", scope="read""#,
                want: vec![(
                    "Bearer",
                    None,
                    vec![
                        ("error", "invalid_token"),
                        ("error_description", r#"bad scope="admin", retry"#),
                        ("scope", "read"),
                    ],
                )],
            },
            Case {
                input: r#"Basic realm="x", Bearer scope="s1", DPoP algs="ES256""#,
                want: vec![
                    ("Basic", None, vec![("realm", "x")]),
                    ("Bearer", None, vec![("scope", "s1")]),
                    ("DPoP", None, vec![("algs", "ES256")]),
                ],
            },
            Case {
                input: "Negotiate abc+/def==, Bearer",
                want: vec![("Negotiate", Some("abc+/def=="), vec![]), ("Bearer", None, vec![])],
            },
            Case {
                input: "Bearer realm = \"sp ace\" ,, scope=x,  ",
                want: vec![("Bearer", None, vec![("realm", "sp ace"), ("scope", "x")])],
            },
            Case {
                input: r#"Bearer scope="first", scope="second""#,
                want: vec![("Bearer", None, vec![("scope", "first")])],
            },
            Case {
                input: "  ",
                want: vec![],
            },
            Case {
                input: "Bearer, Basic",
                want: vec![("Bearer", None, vec![]), ("Basic", None, vec![])],
            },
        ];
        for case in cases {
            let got = parse(case.input).unwrap_or_else(|e| panic!("{:?}: {e}", case.input));
            assert_eq!(got.len(), case.want.len(), "{:?}: {got:?}", case.input);
            for (g, (scheme, t68, ps)) in got.iter().zip(case.want.iter()) {
                assert_eq!(g.scheme, *scheme, "{:?}", case.input);
                assert_eq!(g.token68.as_deref(), *t68, "{:?}", case.input);
                assert_eq!(params(g), *ps, "{:?}", case.input);
            }
        }
    }

    #[test]
    fn hostile_inputs_fail_cleanly() {
        for bad in [
            r#"Bearer scope="unterminated"#,
            r#"Bearer scope="x\"#,
            "=oops",
            "Bearer a=b c=d",
            "Bearer\"x\"",
            "Bearer scope=\"a\u{1}b\"",
            "Bearer tok68 garbage",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        // `scope=` with no value is, by the grammar, a token68 with padding.
        assert_eq!(parse("Bearer scope=").unwrap()[0].token68.as_deref(), Some("scope="));
        // Very long and deeply repetitive input does not blow up.
        let long = format!("Bearer {}", "a=b, ".repeat(20_000));
        assert_eq!(parse(&long).unwrap()[0].params.len(), 1);
        let many = "Bearer, ".repeat(10_000);
        assert_eq!(parse(&many).unwrap().len(), 10_000);
    }

    #[test]
    fn find_bearer_across_headers_skips_broken_ones() {
        let headers = [
            "Basic realm=\"x\"",
            "Bearer scope=\"broken",
            r#"Bearer error="insufficient_scope", scope="read write", resource_metadata="https://r/.well-known/oauth-protected-resource/mcp", error_description="needs scope=admin""#,
        ];
        let b = find_bearer(&headers).unwrap();
        assert_eq!(b.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(b.scope.as_deref(), Some("read write"));
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://r/.well-known/oauth-protected-resource/mcp")
        );
        assert!(find_bearer(&["Basic realm=x"]).is_none());
        assert!(find_bearer::<&str>(&[]).is_none());
    }

    #[test]
    fn a_dpop_error_beside_a_plain_bearer_challenge_is_the_one_read() {
        // A resource server taking both schemes (RFC 9449 §7.2) asks for a nonce.
        let both = [
            r#"Bearer resource_metadata="https://r/.well-known/oauth-protected-resource/mcp""#,
            r#"DPoP error="use_dpop_nonce", error_description="needs a nonce", algs="ES256""#,
        ];
        let b = find_bearer(&both).unwrap();
        assert_eq!(b.scheme, "DPoP");
        assert_eq!(b.error.as_deref(), Some("use_dpop_nonce"));
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("https://r/.well-known/oauth-protected-resource/mcp")
        );
        // In one header, and the other way round.
        let one = [r#"DPoP algs="ES256", Bearer error="invalid_token", scope="read""#];
        let b = find_bearer(&one).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.error.as_deref()),
            ("Bearer", Some("invalid_token"))
        );
        // Without an error anywhere, Bearer first as before.
        let b = find_bearer(&[r#"DPoP algs="ES256""#, r#"Bearer realm="x""#]).unwrap();
        assert_eq!((b.scheme.as_str(), b.error), ("Bearer", None));
        // Both with errors: Bearer first.
        let b = find_bearer(&[r#"DPoP error="use_dpop_nonce""#, r#"Bearer error="invalid_token""#]).unwrap();
        assert_eq!(b.error.as_deref(), Some("invalid_token"));
    }
}
