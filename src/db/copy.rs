//! SQLite to PostgreSQL: schema translation, COPY streaming, indexes and keys after the load, verification.
