//! `soko admin`: account tasks that must work before any admin exists, such as creating the
//! first admin, or without mail, such as a password reset link.

use crate::config::Config;
use std::io::Read;
use std::process::ExitCode;

use super::migrate::{close_database, open_database};
use crate::accounts::{check_new_password, password, random_token};
use crate::config::secrets::Secrets;
use crate::market::phone::Phone;
use crate::market::states::Role;
use crate::market::text;
use crate::store::{self, audit, users};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create an account (e.g. the first admin). The password is read from standard input
    /// when piped; otherwise a random one is generated and printed once.
    CreateUser {
        /// Email address (or use --phone).
        #[arg(long)]
        email: Option<String>,
        /// Phone number, E.164 or Kenyan local form.
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        name: String,
        /// `user` or `admin`.
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print a one-time link with which the account's owner chooses a new password (for
    /// shops without mail, or phone-only accounts). The password is unchanged until the link
    /// is used; it works once, for --hours.
    ResetPassword {
        /// The account's email address or phone number.
        login: String,
        /// How long the link works.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=168))]
        hours: u64,
    },
}

pub async fn run(cfg: Config, args: Args) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_terminal("warn");
    let (email, phone, name, role, password_stdin) = match args.command {
        Command::CreateUser {
            email,
            phone,
            name,
            role,
            password_stdin,
        } => (email, phone, name, role, password_stdin),
        Command::ResetPassword { login, hours } => return reset_password(cfg, &login, hours).await,
    };
    let email = email.map(|e| text::email("email", &e)).transpose()?;
    let phone = phone
        .map(|p| Phone::parse("phone", &p).map(|p| p.to_string()))
        .transpose()?;
    anyhow::ensure!(
        email.is_some() || phone.is_some(),
        "give --email or --phone"
    );
    let name = text::line("name", &name, 1, 120)?;
    let role: Role = role.parse()?;
    let (password, generated) = if password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        (s.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (random_token()[..20].to_owned(), true)
    };
    check_new_password(&password)?;
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let result = async {
        store::migrate::run(&pool).await?;
        let hash = password::hash(password.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let id = users::create(
            &pool,
            &users::NewUser {
                email: email.as_deref(),
                phone: phone.as_deref(),
                name: &name,
                password_hash: &hash,
                role,
            },
        )
        .await?;
        audit::append(
            &pool,
            &audit::Entry {
                actor_user_id: None,
                action: "user.create",
                target: &format!("user:{id}"),
                detail: &format!("role {role} from the command line"),
                ip: "cli",
            },
        )
        .await?;
        anyhow::Ok(id)
    }
    .await;
    close_database(pool, temporary).await;
    let id = result?;
    println!(
        "created {role} account {id} ({})",
        email.or(phone).unwrap_or_default()
    );
    if generated {
        println!("password: {password}\n(shown once; change it after logging in)");
    }
    Ok(ExitCode::SUCCESS)
}

/// `soko admin reset-password`: a one-time link, printed (never mailed), recorded in the audit
/// log; the account's password is unchanged until the link is used.
async fn reset_password(cfg: Config, login: &str, hours: u64) -> anyhow::Result<ExitCode> {
    let name = crate::web::auth::login_name(login);
    Secrets::ensure(&cfg.secrets_path())?;
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let (pool, temporary) = open_database(&cfg, &secrets).await?;
    let result = async {
        store::migrate::run(&pool).await?;
        let user = users::by_login(&pool, &name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no account has the login {name:?}"))?;
        let token = random_token();
        let hash = crate::web::session::hash_token(&token);
        store::resets::create(&pool, user.id, &hash, hours * 3600, "operator").await?;
        audit::append(
            &pool,
            &audit::Entry {
                actor_user_id: None,
                action: "password_reset_link",
                target: &format!("user:{}", user.id),
                detail: &format!("printed by soko admin reset-password, valid {hours} h"),
                ip: "cli",
            },
        )
        .await?;
        anyhow::Ok((user, token))
    }
    .await;
    close_database(pool, temporary).await;
    let (user, token) = result?;
    let base = crate::web::Settings::from_config(&cfg).base_url;
    println!(
        "reset link for account {} ({name}), valid {hours} h, works once:\n{base}{}",
        user.id,
        crate::web::password_reset::link_path(&token)
    );
    Ok(ExitCode::SUCCESS)
}
