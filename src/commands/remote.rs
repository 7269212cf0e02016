//! `remote add|list|remove`: the S3-compatible remotes that off-site copies
//! go to, kept in the store's `remotes.json`.

use super::Run;
use crate::cli::{RemoteAddArgs, RemoteCommand, UrlStyle};
use crate::context::Ctx;
use crate::error::{Error, Refusal, Result};
use crate::offsite::remote::{Remote, Remotes};
use crate::offsite::sign::{HostKey, PublicKey};
use crate::offsite::{self, crypt, remote};
use crate::report::RemoteReport;

impl Run for RemoteCommand {
    type Report = RemoteReport;

    fn run(&self, ctx: &mut Ctx) -> Result<RemoteReport> {
        let report = match self {
            RemoteCommand::Add(a) => add(a, ctx)?,
            RemoteCommand::List => {
                let install = ctx.install()?;
                let store = install.open_store()?;
                RemoteReport::Listed {
                    remotes: Remotes::load(&store.root)?.remotes,
                    signing_key: HostKey::load(&store.root)?.map(|k| k.public().to_string()),
                }
            }
            RemoteCommand::Remove(a) => {
                let install = ctx.install()?;
                let writing = ctx.begin_write(&install, "remote remove")?;
                let mut remotes = Remotes::load(&writing.store.root)?;
                remotes.get(&a.name)?;
                remotes.remotes.remove(&a.name);
                remotes.save(&writing.store.root)?;
                offsite::forget_pending(&writing.store, &a.name)?;
                RemoteReport::Removed { removed: a.name.clone() }
            }
        };
        ctx.out.show(&report);
        Ok(report)
    }
}

/// `remote add`: checks everything, lists the bucket once to prove the
/// address and the keys, makes this host's signing key if it has none,
/// then saves.
fn add(args: &RemoteAddArgs, ctx: &mut Ctx) -> Result<RemoteReport> {
    remote::check_name(&args.name)?;
    remote::parse_url(&args.url)?;
    let recipients = crypt::recipients(&args.recipients, args.recipients_file.as_deref())?;
    let endpoint = match &args.endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => format!("https://s3.{}.amazonaws.com", args.region),
    };
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(Error::Usage(format!("--endpoint {endpoint:?} must start with https:// (or http://)")));
    }
    let aws = endpoint.ends_with(".amazonaws.com");
    let path_style = match args.url_style {
        Some(UrlStyle::Path) => true,
        Some(UrlStyle::Virtual) => false,
        None => !aws,
    };
    let trusted_keys = args
        .trust_keys
        .iter()
        .map(|k| PublicKey::from_arg(k).map(|k| k.to_string()))
        .collect::<Result<Vec<_>>>()?;
    let credentials_file = match &args.credentials_file {
        Some(f) => Some(f.canonicalize().map_err(|e| Error::io("cannot find credentials file", f, e))?),
        None => None,
    };
    let new = Remote {
        url: args.url.clone(),
        endpoint,
        region: args.region.clone(),
        path_style,
        recipients,
        credentials_file,
        profile: args.profile.clone(),
        trusted_keys,
    };
    let install = ctx.install()?;
    let writing = ctx.begin_write(&install, "remote add")?;
    let mut remotes = Remotes::load(&writing.store.root)?;
    if let Some(old) = remotes.remotes.get(&args.name) {
        if *old == new {
            let (key, key_created) = HostKey::load_or_create(&writing.store.root)?;
            return Ok(RemoteReport::Added {
                name: args.name.clone(),
                remote: new,
                changed: false,
                signing_key: key.public().to_string(),
                key_created,
            });
        }
        return Err(Error::refused(
            Refusal::RemoteConflict,
            format!("a remote named {} exists ({})", args.name, old.url),
            format!("`bwguard remote remove {}` first, or choose another name", args.name),
        ));
    }
    if !args.no_check {
        let (listed, incomplete) = offsite::list(&new.client()?)?;
        ctx.out.info(format!(
            "Reached {} at {}: {} snapshot copies there{}",
            new.url,
            new.endpoint,
            listed.len(),
            if incomplete.is_empty() { String::new() } else { format!(", {} incomplete", incomplete.len()) }
        ));
    }
    let (key, key_created) = HostKey::load_or_create(&writing.store.root)?;
    remotes.format = 1;
    remotes.remotes.insert(args.name.clone(), new.clone());
    remotes.save(&writing.store.root)?;
    Ok(RemoteReport::Added {
        name: args.name.clone(),
        remote: new,
        changed: true,
        signing_key: key.public().to_string(),
        key_created,
    })
}
