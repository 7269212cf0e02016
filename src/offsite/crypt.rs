//! age encryption: recipients (public keys) to push, identities (private
//! keys) to pull. The output is the standard age format, so `age -d`
//! decrypts it by hand.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Parses and checks age recipients given on the command line and in a
/// recipients file (one per line, `#` comments and blank lines ignored).
/// Returns them in their canonical text form.
pub fn recipients(given: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let mut all: Vec<(String, String)> =
        given.iter().map(|r| (r.trim().to_string(), "--recipient".into())).collect();
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).map_err(|e| Error::io("cannot read recipients file", file, e))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                all.push((line.to_string(), format!("{} line {}", file.display(), n + 1)));
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for (text, from) in all {
        let r = age::x25519::Recipient::from_str(&text).map_err(|e| {
            let shown: String = text.chars().take(24).collect();
            if text.starts_with("AGE-SECRET-KEY-") {
                Error::Usage(format!(
                    "{from} is a private key (an age identity), not a recipient; \
                     give its public key instead (`age-keygen -y FILE` prints it) and keep the identity off this host"
                ))
            } else {
                Error::Usage(format!("{from}: {shown:?} is not an age recipient (age1…): {e}"))
            }
        })?;
        let canonical = r.to_string();
        if !out.contains(&canonical) {
            out.push(canonical);
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "a remote needs at least one age recipient: --recipient age1… or --recipients-file FILE".into(),
        ));
    }
    Ok(out)
}

/// Wraps `output` so what is written to it is encrypted to `recipients`.
/// The caller must call `finish` on the result.
pub fn encrypt<W: Write>(recipients: &[String], output: W) -> Result<age::stream::StreamWriter<W>> {
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| age::x25519::Recipient::from_str(r).map_err(|e| Error::Usage(format!("recipient {r}: {e}"))))
        .collect::<Result<_>>()?;
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| Error::internal(format!("cannot encrypt: {e}")))?;
    encryptor
        .wrap_output(output)
        .map_err(|e| Error::internal(format!("cannot start the encrypted stream: {e}")))
}

/// The identities in an age identity file.
pub struct Identities {
    list: Vec<Box<dyn age::Identity + Send + Sync>>,
    file: String,
}

impl Identities {
    /// Reads an identity file (`AGE-SECRET-KEY-1…` lines, as `age-keygen` writes).
    pub fn load(path: &Path) -> Result<Identities> {
        let file = path.display().to_string();
        if !path.is_file() {
            return Err(Error::Usage(format!("no identity file at {file}")));
        }
        let parsed = age::IdentityFile::from_file(file.clone()).map_err(|e| {
            Error::Usage(format!("{file} is not an age identity file (AGE-SECRET-KEY-1… lines): {e}"))
        })?;
        let list = parsed
            .into_identities()
            .map_err(|e| Error::Usage(format!("{file}: cannot use its identities: {e}")))?;
        if list.is_empty() {
            return Err(Error::Usage(format!("{file} holds no age identity")));
        }
        Ok(Identities { list, file })
    }

    /// Starts decrypting `input`. A stream for other recipients, or one
    /// whose header was altered, is an integrity failure of snapshot `id`.
    pub fn decrypt<R: Read>(&self, id: &str, input: R) -> Result<age::stream::StreamReader<R>> {
        let d = age::Decryptor::new(input).map_err(|e| decrypt_error(id, &self.file, e))?;
        d.decrypt(self.list.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| decrypt_error(id, &self.file, e))
    }
}

/// A decryption failure in words (exit 3: the copy cannot be used as it is).
fn decrypt_error(id: &str, file: &str, e: age::DecryptError) -> Error {
    match e {
        age::DecryptError::NoMatchingKeys => Error::Integrity {
            id: id.to_string(),
            problem: format!(
                "the identity in {file} is not one of the recipients this copy was encrypted to; \
                 use the identity whose public key the remote was set up with"
            ),
        },
        other => Error::Integrity {
            id: id.to_string(),
            problem: format!("the encrypted copy is damaged or not an age file: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_and_wrong_identity() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (age::x25519::Identity::generate(), age::x25519::Identity::generate());
        let ra = recipients(&[a.to_public().to_string()], None).unwrap();
        let mut w = encrypt(&ra, Vec::new()).unwrap();
        w.write_all(b"vault bytes").unwrap();
        let ct = w.finish().unwrap();
        let fa = t.path().join("a.txt");
        std::fs::write(&fa, format!("# key\n{}\n", a.to_string().expose_secret())).unwrap();
        let mut plain = Vec::new();
        Identities::load(&fa).unwrap().decrypt("x", &ct[..]).unwrap().read_to_end(&mut plain).unwrap();
        assert_eq!(plain, b"vault bytes");
        let fb = t.path().join("b.txt");
        std::fs::write(&fb, b.to_string().expose_secret()).unwrap();
        let e = Identities::load(&fb).unwrap().decrypt("x", &ct[..]).err().unwrap();
        assert!(e.to_string().contains("not one of the recipients"), "{e}");
    }

    #[test]
    fn recipients_file_comments_duplicates_and_mistakes() {
        let t = tempfile::tempdir().unwrap();
        let a = age::x25519::Identity::generate().to_public().to_string();
        let f = t.path().join("r.txt");
        std::fs::write(&f, format!("# office\n\n{a}\n{a}\n")).unwrap();
        assert_eq!(recipients(std::slice::from_ref(&a), Some(&f)).unwrap(), vec![a.clone()]);
        std::fs::write(&f, "age1notakey\n").unwrap();
        let e = recipients(&[], Some(&f)).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("not an age recipient"), "{e}");
        let secret = age::x25519::Identity::generate();
        let e = recipients(&[secret.to_string().expose_secret().to_string()], None).unwrap_err().to_string();
        assert!(e.contains("private key") && !e.contains("AGE-SECRET-KEY-1"), "{e}");
        assert!(recipients(&[], None).is_err());
    }
}
