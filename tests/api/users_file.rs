//! Users files: argon2id hashes from `authd hash-password` and bcrypt hashes as `htpasswd -B`
//! writes them both log in.

use crate::helpers::{assert_message, spawn_app_with};
use authd::config::UsersSource;

#[tokio::test]
async fn login_with_bcrypt_hash_from_htpasswd_works() {
    // `htpasswd -B` writes `$2y$`; the bcrypt crate writes `$2b$` for the same algorithm.
    let bcrypt = bcrypt::hash("builder", 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let argon = authd::users::hash_password(b"wonderland").unwrap();
    let app = spawn_app_with(|c, dir| {
        let path = dir.join("htpasswd");
        std::fs::write(&path, format!("# team\n\nbob:{bcrypt}\nalice:{argon}\n")).unwrap();
        c.users = UsersSource::File(path);
    })
    .await;
    assert_eq!(app.login("bob", "builder").await.status(), 200);
    assert_eq!(app.login("alice", "wonderland").await.status(), 200);
    assert_message(
        app.login("bob", "wonderland").await,
        401,
        "Could not verify",
    )
    .await;
    assert_message(app.login("carol", "builder").await, 401, "Could not verify").await;
    // The tutorial's user is not there outside demo mode.
    assert_message(app.login("user", "password").await, 401, "Could not verify").await;
}
