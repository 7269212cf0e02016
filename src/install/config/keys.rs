//! The keys Bitwarden's Setup writes in config.yml, and why a read or an
//! edit was refused.

/// Type of a known config.yml key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `true`/`false`; Setup also reads y/yes/on and n/no/off in any case.
    Bool,
    /// A port number from 0 to 65535, or empty.
    Port,
    /// One line of text, or empty.
    Text,
    /// A one-line flow list of strings such as `['10.0.0.0/8']`, or empty.
    List,
}

/// A top-level key Bitwarden's Setup knows (release 2026.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownKey {
    /// The key as written in config.yml.
    pub name: &'static str,
    /// The values it takes.
    pub ty: KeyType,
    /// The first comment line Setup writes above it.
    pub description: &'static str,
}

macro_rules! known_keys {
    ($($name:literal $ty:ident $description:literal)*) => {
        &[$(KnownKey { name: $name, ty: KeyType::$ty, description: $description }),*]
    };
}

/// The keys Setup writes, in the order it writes them.
pub const KNOWN_KEYS: &[KnownKey] = known_keys! {
    "url" Text "Full URL for accessing the installation from a browser. (Required)"
    "generate_compose_config" Bool "Auto-generate the `./docker/docker-compose.yml` config file."
    "generate_nginx_config" Bool "Auto-generate the `./nginx/default.conf` file."
    "http_port" Port "Docker compose file port mapping for HTTP. Leave empty to remove the port mapping."
    "https_port" Port "Docker compose file port mapping for HTTPS. Leave empty to remove the port mapping."
    "ssl" Bool "Configure Nginx for SSL."
    "ssl_versions" Text "SSL versions used by Nginx (ssl_protocols). Leave empty for recommended default."
    "ssl_ciphersuites" Text "SSL ciphersuites used by Nginx (ssl_ciphers). Leave empty for recommended default."
    "ssl_curves" Text "SSL curves (groups in TLS 1.3) used by Nginx (ssl_ecdh_curve). Leave empty for recommended default."
    "ssl_managed_lets_encrypt" Bool "Installation uses a managed Let's Encrypt certificate."
    "ssl_certificate_path" Text "The actual certificate. (Required if using SSL without managed Let's Encrypt)"
    "ssl_key_path" Text "The certificate's private key. (Required if using SSL without managed Let's Encrypt)"
    "ssl_ca_path" Text "If the certificate is trusted by a CA, you should provide the CA's certificate."
    "ssl_diffie_hellman_path" Text "Diffie Hellman ephemeral parameters"
    "nginx_header_content_security_policy" Text "Nginx Header Content-Security-Policy parameter"
    "push_notifications" Bool "Communicate with the Bitwarden push relay service (push.bitwarden.com) for mobile"
    "database_docker_volume" Bool "Use a docker volume (`mssql_data`) instead of a host-mapped volume for the persisted database."
    "real_ips" List "Defines \"real\" IPs in nginx.conf. Useful for defining proxy servers that forward the "
    "enable_key_connector" Bool "Enable Key Connector (https://bitwarden.com/help/article/deploy-key-connector)"
    "enable_scim" Bool "Enable SCIM"
    "enable_built_in_ms_sql" Bool "Enable Built-In MSSQL Container Generation"
};

/// The known key named `name`, if Setup knows it.
pub fn known_key(name: &str) -> Option<&'static KnownKey> {
    KNOWN_KEYS.iter().find(|k| k.name == name)
}

/// Why config.yml could not be read or an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not UTF-8.
    #[error("the file is not valid UTF-8")]
    NotUtf8,
    /// The file is not YAML this module can read.
    #[error("the file is not valid YAML{}: {reason}", at_line(.line))]
    Unparsable { line: Option<usize>, reason: String },
    /// The document is empty or its root is not a mapping.
    #[error("the file does not hold a mapping of `key: value` lines")]
    NotMapping,
    /// Setup does not know the key.
    #[error("unknown key `{key}`: Bitwarden's setup does not know it")]
    UnknownKey { key: String },
    /// A top-level key occurs more than once.
    #[error("key `{key}` appears more than once (lines {})", join(.lines))]
    DuplicateKey { key: String, lines: Vec<usize> },
    /// The value does not fit the key's type.
    #[error("`{}` is not a valid value for `{key}`: expected {expected}", .value.escape_debug())]
    WrongType { key: String, value: String, expected: &'static str },
    /// The key is not in the file.
    #[error("key `{key}` is missing from the file")]
    MissingKey { key: String },
    /// The value is not a one-line scalar that a line edit can change safely.
    #[error("the value of `{key}` at line {line} is not a one-line value that can be edited in place")]
    NotOneLine { key: String, line: usize },
    /// The edited file did not read back as intended; nothing may be written.
    #[error("the edit did not verify: {reason}")]
    Verify { reason: String },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

fn join(lines: &[usize]) -> String {
    lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

impl ConfigError {
    /// Every name [`ConfigError::kind`] gives.
    pub const KINDS: [&str; 9] = [
        "not-utf8",
        "unparsable",
        "not-mapping",
        "unknown-key",
        "duplicate-key",
        "wrong-type",
        "missing-key",
        "not-one-line",
        "verify-failed",
    ];

    /// A short, stable kebab-case name for `--json` errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::NotUtf8 => "not-utf8",
            ConfigError::Unparsable { .. } => "unparsable",
            ConfigError::NotMapping => "not-mapping",
            ConfigError::UnknownKey { .. } => "unknown-key",
            ConfigError::DuplicateKey { .. } => "duplicate-key",
            ConfigError::WrongType { .. } => "wrong-type",
            ConfigError::MissingKey { .. } => "missing-key",
            ConfigError::NotOneLine { .. } => "not-one-line",
            ConfigError::Verify { .. } => "verify-failed",
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::NotUtf8 => "save config.yml as UTF-8, as Bitwarden's setup writes it".into(),
            ConfigError::Unparsable { .. } | ConfigError::NotMapping => {
                "fix config.yml by hand, or restore it with `bwguard rollback --only config`".into()
            }
            ConfigError::UnknownKey { key } if key == "captcha" || key == "compose_version" => {
                format!("Bitwarden has removed `{key}` and its setup ignores it: nothing to set")
            }
            ConfigError::UnknownKey { key } => {
                let why = "Bitwarden's setup silently drops keys it does not know";
                match closest_key(key) {
                    Some(k) => format!("did you mean `{k}`? ({why})"),
                    None => {
                        let all: Vec<_> = KNOWN_KEYS.iter().map(|k| k.name).collect();
                        format!("known keys: {} ({why})", all.join(", "))
                    }
                }
            }
            ConfigError::DuplicateKey { key, .. } => {
                format!("keep one `{key}:` line, delete the others, then run again")
            }
            ConfigError::WrongType { key, expected, .. } => format!("give `{key}` {expected}"),
            ConfigError::MissingKey { .. } => {
                "run `./bitwarden.sh update` first, which adds the key, or pass --add-missing".into()
            }
            ConfigError::NotOneLine { key, .. } => {
                format!("edit `{key}` by hand, or first rewrite its value on one line")
            }
            ConfigError::Verify { .. } => {
                "nothing was written; edit config.yml by hand and report this bwguard bug".into()
            }
        })
    }
}

/// The known key nearest to a misspelled `key`, if one is close enough.
fn closest_key(key: &str) -> Option<&'static str> {
    let limit = (key.chars().count() / 3).max(2);
    KNOWN_KEYS
        .iter()
        .map(|k| (distance(key, k.name), k.name))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
