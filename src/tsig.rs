//! TSIG keys (RFC 8945) as BIND's `tsig-keygen` writes them: read and checked
//! when the configuration is, used by the RFC 2136 provider to sign. Apart
//! from both so that neither depends on the other through it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use hickory_proto::rr::Name;
use hickory_proto::rr::TSigner;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

/// A TSIG key read from a BIND-format file (`tsig-keygen NAME > FILE`):
///
/// ```text
/// key "NAME" {
///     algorithm hmac-sha256;
///     secret "BASE64";
/// };
/// ```
#[derive(Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
    pub file: PathBuf,
}

/// Never shows the secret.
impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl TsigKey {
    /// Reads and checks a key file. The error says what to write instead and
    /// never quotes the secret.
    pub fn load(path: &Path) -> Result<TsigKey, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read {}: {e}; write the key there (the output of `tsig-keygen -a hmac-sha256 NAME`, mode 600)",
                path.display()
            )
        })?;
        let (name, algorithm, secret) =
            parse_key_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TsigKey {
            name,
            algorithm,
            secret,
            file: path.to_path_buf(),
        })
    }

    /// A signer for messages, allowing `fudge` seconds of clock difference.
    pub fn signer(&self, fudge: u16) -> anyhow::Result<TSigner> {
        let name = Name::from_ascii(&self.name)
            .map_err(|e| anyhow::anyhow!("the key name `{}` is not a DNS name: {e}", self.name))?;
        TSigner::new(self.secret.clone(), self.algorithm.clone(), name, fudge)
            .map_err(|e| anyhow::anyhow!("cannot sign with key `{}`: {e}", self.name))
    }

    /// Names the key and its file, never its secret.
    pub fn describe(&self) -> String {
        format!(
            "key `{}` ({}) from {}",
            self.name,
            self.algorithm,
            self.file.display()
        )
    }
}

/// Parses the `key` statement of a named.conf-style file: name, algorithm, secret.
fn parse_key_file(text: &str) -> Result<(String, TsigAlgorithm, Vec<u8>), String> {
    let tokens = tokenize(text)?;
    let mut keys = Vec::new();
    let mut it = tokens.iter().map(String::as_str).peekable();
    while let Some(t) = it.next() {
        if t != "key" {
            return Err(format!(
                "expected a `key \"NAME\" {{ algorithm …; secret \"…\"; }};` statement, found `{t}`"
            ));
        }
        let name = it.next().ok_or("`key` without a name")?.to_string();
        if it.next() != Some("{") {
            return Err(format!("`key {name}` must be followed by `{{`"));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match it.next() {
                Some("}") => break,
                Some("algorithm") => {
                    algorithm = Some(it.next().ok_or("`algorithm` without a value")?)
                }
                Some("secret") => secret = Some(it.next().ok_or("`secret` without a value")?),
                Some(other) => {
                    return Err(format!(
                        "unknown statement `{other}` in key {name}; a key has `algorithm` and `secret`"
                    ));
                }
                None => return Err(format!("key {name} is not closed with `}};`")),
            }
            if it.next() != Some(";") {
                return Err(format!("a statement in key {name} is not ended with `;`"));
            }
        }
        if it.peek() == Some(&";") {
            it.next();
        }
        keys.push((name, algorithm, secret));
    }
    let (name, algorithm, secret) = match keys.len() {
        1 => keys.remove(0),
        0 => {
            return Err(
                "no `key` statement; write the output of `tsig-keygen -a hmac-sha256 NAME`".into(),
            );
        }
        n => {
            let names: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
            return Err(format!(
                "holds {n} keys ({}); keep the one the server's allow-update names",
                names.join(", ")
            ));
        }
    };
    let algorithm = algorithm.ok_or(format!("key {name} has no `algorithm`"))?;
    let algorithm = match algorithm
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .as_str()
    {
        "hmac-sha256" => TsigAlgorithm::HmacSha256,
        "hmac-sha384" => TsigAlgorithm::HmacSha384,
        "hmac-sha512" => TsigAlgorithm::HmacSha512,
        other => {
            return Err(format!(
                "key {name} uses {other}, which dnsreg does not sign with; make a key with `tsig-keygen -a hmac-sha256 {name}` (hmac-sha256, hmac-sha384 and hmac-sha512 are supported)"
            ));
        }
    };
    let secret = secret.ok_or(format!("key {name} has no `secret`"))?;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|_| format!("the secret of key {name} is not base64"))?;
    if secret.is_empty() {
        return Err(format!("the secret of key {name} is empty"));
    }
    if Name::from_ascii(&name).is_err() {
        return Err(format!("the key name `{name}` is not a DNS name"));
    }
    Ok((name, algorithm, secret))
}

/// named.conf tokens: words, quoted strings (unquoted), `{`, `}`, `;`; comments dropped.
fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                        None => return Err("a /* comment is not closed".into()),
                    }
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("a quoted string is not closed".into()),
                    }
                }
                out.push(s);
            }
            c => {
                let mut s = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

impl FromStr for TsigKey {
    type Err = String;

    /// Parses key-file text (no file name in messages).
    fn from_str(text: &str) -> Result<TsigKey, String> {
        let (name, algorithm, secret) = parse_key_file(text)?;
        Ok(TsigKey {
            name,
            algorithm,
            secret,
            file: PathBuf::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYGEN: &str = "key \"dnsreg\" {\n\talgorithm hmac-sha256;\n\tsecret \"uAzmenGLrtLBZEQk1tr+sFUpzfDfezIFgWYe1HkfgBU=\";\n};\n";

    #[test]
    fn reads_what_tsig_keygen_writes() {
        let k: TsigKey = KEYGEN.parse().unwrap();
        assert_eq!(k.name, "dnsreg");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(k.secret.len(), 32);
    }

    #[test]
    fn reads_comments_other_layouts_and_stronger_algorithms() {
        let text = "# made by hand\n/* a\n comment */ key dnsreg-2 { // trailing\n secret \"c2VjcmV0\"; algorithm HMAC-SHA512.; };";
        let k: TsigKey = text.parse().unwrap();
        assert_eq!(k.name, "dnsreg-2");
        assert_eq!(k.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(k.secret, b"secret");
    }

    #[test]
    fn refuses_what_it_cannot_sign_with_and_says_what_to_do() {
        let md5 = KEYGEN.replace("hmac-sha256", "hmac-md5");
        let e = md5.parse::<TsigKey>().unwrap_err();
        assert!(e.contains("tsig-keygen -a hmac-sha256"), "{e}");
        let two = format!("{KEYGEN}{}", KEYGEN.replace("\"dnsreg\"", "\"other\""));
        let e = two.parse::<TsigKey>().unwrap_err();
        assert!(e.contains("2 keys (dnsreg, other)"), "{e}");
        for (text, says) in [
            ("", "no `key` statement"),
            ("key \"k\" { algorithm hmac-sha256; };", "has no `secret`"),
            ("key \"k\" { secret \"c2VjcmV0\"; };", "has no `algorithm`"),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"%%%\"; };",
                "not base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256 secret \"c2VjcmV0\"; };",
                "not ended with `;`",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0",
                "not closed",
            ),
            ("zone \"x\" { };", "expected a `key"),
            (
                "key \"k\" { algorithm hmac-sha256; owner x; };",
                "unknown statement `owner`",
            ),
        ] {
            let e = text.parse::<TsigKey>().unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let k: TsigKey = KEYGEN.parse().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("uAzmen"), "{shown}");
        assert!(!shown.contains("184"), "{shown}");
    }
}
