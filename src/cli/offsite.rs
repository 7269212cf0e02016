//! Arguments of the off-site commands: `push`, `pull`, `remote`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

/// Arguments of `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Snapshot ids (`latest`, or the unique beginning of one) [default: the newest]
    #[arg(value_name = "ID", add = ArgValueCompleter::new(super::complete::snapshot_ids))]
    pub ids: Vec<String>,
    /// Push every local snapshot the remote does not hold yet
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// The remote [default: the only one]
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
}

/// Arguments of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Snapshot id [default: the newest copy on the remote]
    pub id: Option<String>,
    /// The remote [default: the only one]
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(super::complete::remote_names))]
    pub remote: Option<String>,
    /// The age identity file (private key) to decrypt with
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// Which copies on a remote are accepted besides those signed by this
/// host's key or a key saved with the remote.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Also accept copies signed by this key (bwguard-ed25519:…, e.g. the old host's); repeat for more
    #[arg(long = "trust-key", value_name = "KEY")]
    pub trust_keys: Vec<String>,
    /// Also accept copies without a signature (pushed by a bwguard older than signatures)
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl TrustArgs {
    /// As the off-site code takes it.
    pub fn accept(&self) -> crate::offsite::sign::Accept {
        crate::offsite::sign::Accept { keys: self.trust_keys.clone(), unsigned: self.allow_unsigned }
    }
}

/// `remote add|list|remove`.
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add an S3-compatible remote (checks that it can be listed)
    Add(RemoteAddArgs),
    /// List the remotes
    List,
    /// Forget a remote (its bucket is left as it is)
    Remove(RemoteNameArg),
}

/// How bucket URLs are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UrlStyle {
    /// endpoint/bucket/key (MinIO, Garage, most self-hosted stores)
    Path,
    /// bucket.endpoint/key (AWS)
    Virtual,
}

/// Arguments of `remote add`.
#[derive(Debug, Args)]
pub struct RemoteAddArgs {
    /// A name for the remote
    pub name: String,
    /// Where copies go: s3://BUCKET/PREFIX
    pub url: String,
    /// The S3 endpoint, e.g. https://s3.eu-central-003.backblazeb2.com [default: AWS for --region]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The signing region
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub region: String,
    /// Bucket addressing [default: virtual for AWS, path otherwise]
    #[arg(long, value_enum)]
    pub url_style: Option<UrlStyle>,
    /// An age recipient (public key, age1…) to encrypt to; repeat for more
    #[arg(long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// A file of age recipients, one per line
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
    /// Read the S3 keys from this AWS-style credentials file (needed for scheduled pushes)
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// The profile in the credentials file [default: AWS_PROFILE, else default]
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Also trust copies on this remote signed by this key (bwguard-ed25519:…, another host's); repeat for more
    #[arg(long = "trust-key", value_name = "KEY")]
    pub trust_keys: Vec<String>,
    /// Save the remote without checking that it can be reached
    #[arg(long)]
    pub no_check: bool,
}

/// A remote's name.
#[derive(Debug, Args)]
pub struct RemoteNameArg {
    /// The remote
    #[arg(add = ArgValueCompleter::new(super::complete::remote_names))]
    pub name: String,
}
