//! The throwaway PostgreSQL cluster itself: the harness every PostgreSQL test stands on.

use crate::support::pg::cluster;

#[test]
fn cluster_runs_postgres_15() {
    let version = cluster().psql("postgres", "SELECT version()");
    assert!(version.starts_with("PostgreSQL 15."), "{version}");
}

#[test]
fn create_db_gives_distinct_databases() {
    let pg = cluster();
    let a = pg.create_db("harness");
    let b = pg.create_db("harness");
    assert_ne!(a, b);
    pg.psql(&a, "CREATE TABLE only_in_a (id int)");
    let count = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'";
    assert_eq!(pg.psql(&a, count), "1");
    assert_eq!(pg.psql(&b, count), "0");
}

#[test]
#[should_panic(expected = "syntax error")]
fn psql_panics_with_the_server_error() {
    cluster().psql("postgres", "SELEC 1");
}

#[tokio::test]
async fn sqlx_connects_to_a_created_database() {
    use sqlx::Connection;

    let url = cluster().create_db("sqlx");
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect with sqlx");
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .expect("query current_database()");
    assert!(url.ends_with(&format!("/{db}")), "{url} vs {db}");
    let answer: i32 = sqlx::query_scalar("SELECT $1::int4 + 1")
        .bind(41)
        .fetch_one(&mut conn)
        .await
        .expect("query with a bound parameter");
    assert_eq!(answer, 42);
    conn.close().await.expect("close the connection");
}

#[test]
fn cluster_listens_on_its_own_port_only_on_loopback() {
    let pg = cluster();
    assert_eq!(pg.psql("postgres", "SHOW port"), pg.port().to_string());
    assert_eq!(pg.psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
    assert!(pg.bin_dir().join("initdb").is_file());
}
