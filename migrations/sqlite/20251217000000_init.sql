-- Unified Health Platform schema for local development on SQLite: the same tables, columns
-- and indexes as migrations/postgres (timestamps as ISO 8601 text, booleans as 0/1, arrays and
-- JSON as JSON text).

CREATE TABLE "User" (
    "id"           TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "email"        TEXT NOT NULL,
    "passwordHash" TEXT NOT NULL,
    "firstName"    TEXT,
    "lastName"     TEXT,
    "role"         TEXT NOT NULL DEFAULT 'PATIENT' CHECK ("role" IN ('PATIENT', 'PROVIDER', 'ADMIN')),
    "status"       TEXT NOT NULL DEFAULT 'ACTIVE' CHECK ("status" IN ('ACTIVE', 'INACTIVE', 'SUSPENDED')),
    "createdAt"    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    "updatedAt"    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX "User_email_key" ON "User" ("email");
CREATE INDEX "User_role_idx" ON "User" ("role");
CREATE INDEX "User_status_idx" ON "User" ("status");
CREATE INDEX "User_role_status_idx" ON "User" ("role", "status");
CREATE INDEX "User_createdAt_idx" ON "User" ("createdAt");

CREATE TABLE "RefreshToken" (
    "id"        TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "token"     TEXT NOT NULL,
    "userId"    TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "expiresAt" TEXT NOT NULL,
    "createdAt" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX "RefreshToken_token_key" ON "RefreshToken" ("token");
CREATE INDEX "RefreshToken_userId_idx" ON "RefreshToken" ("userId");
CREATE INDEX "RefreshToken_expiresAt_idx" ON "RefreshToken" ("expiresAt");
CREATE INDEX "RefreshToken_userId_expiresAt_idx" ON "RefreshToken" ("userId", "expiresAt");

CREATE TABLE "Patient" (
    "id"                  TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "userId"              TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "medicalRecordNumber" TEXT NOT NULL,
    "dateOfBirth"         TEXT,
    "phone"               TEXT,
    "createdAt"           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX "Patient_userId_key" ON "Patient" ("userId");
CREATE UNIQUE INDEX "Patient_medicalRecordNumber_key" ON "Patient" ("medicalRecordNumber");

CREATE TABLE "Provider" (
    "id"            TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "userId"        TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "licenseNumber" TEXT NOT NULL,
    "specialty"     TEXT NOT NULL DEFAULT '[]',
    "available"     INTEGER NOT NULL DEFAULT 1,
    "createdAt"     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX "Provider_userId_key" ON "Provider" ("userId");
CREATE UNIQUE INDEX "Provider_licenseNumber_key" ON "Provider" ("licenseNumber");
-- SQLite has no arrays: specialty is a JSON list, and the GIN index of PostgreSQL has no
-- counterpart here (development data is small).
CREATE INDEX "Provider_available_idx" ON "Provider" ("available");

CREATE TABLE "Appointment" (
    "id"              TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "patientId"       TEXT NOT NULL REFERENCES "Patient" ("id") ON DELETE CASCADE,
    "providerId"      TEXT NOT NULL REFERENCES "Provider" ("id") ON DELETE RESTRICT,
    "scheduledAt"     TEXT NOT NULL,
    "durationMinutes" INTEGER NOT NULL DEFAULT 30,
    "status"          TEXT NOT NULL DEFAULT 'SCHEDULED'
                      CHECK ("status" IN ('SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    "notes"           TEXT,
    "createdAt"       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX "Appointment_patientId_idx" ON "Appointment" ("patientId");
CREATE INDEX "Appointment_providerId_idx" ON "Appointment" ("providerId");
CREATE INDEX "Appointment_scheduledAt_idx" ON "Appointment" ("scheduledAt");
CREATE INDEX "Appointment_status_idx" ON "Appointment" ("status");
CREATE INDEX "Appointment_patientId_scheduledAt_idx" ON "Appointment" ("patientId", "scheduledAt");
CREATE INDEX "Appointment_providerId_scheduledAt_idx" ON "Appointment" ("providerId", "scheduledAt");

CREATE TABLE "Plan" (
    "id"          TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "name"        TEXT NOT NULL,
    "description" TEXT,
    "priceCents"  INTEGER NOT NULL CHECK ("priceCents" >= 0),
    "currency"    TEXT NOT NULL DEFAULT 'USD',
    "interval"    TEXT NOT NULL CHECK ("interval" IN ('MONTH', 'YEAR')),
    "features"    TEXT NOT NULL DEFAULT '[]',
    "active"      INTEGER NOT NULL DEFAULT 1,
    "createdAt"   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX "Plan_name_key" ON "Plan" ("name");
CREATE INDEX "Plan_active_idx" ON "Plan" ("active");
CREATE INDEX "Plan_interval_idx" ON "Plan" ("interval");
CREATE INDEX "Plan_active_interval_idx" ON "Plan" ("active", "interval");

CREATE TABLE "Subscription" (
    "id"                 TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "userId"             TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "planId"             TEXT NOT NULL REFERENCES "Plan" ("id") ON DELETE RESTRICT,
    "status"             TEXT NOT NULL DEFAULT 'ACTIVE'
                         CHECK ("status" IN ('ACTIVE', 'PAST_DUE', 'CANCELLED', 'EXPIRED', 'TRIALING')),
    "currentPeriodStart" TEXT NOT NULL,
    "currentPeriodEnd"   TEXT NOT NULL,
    "cancelAtPeriodEnd"  INTEGER NOT NULL DEFAULT 0,
    "createdAt"          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX "Subscription_userId_idx" ON "Subscription" ("userId");
CREATE INDEX "Subscription_status_idx" ON "Subscription" ("status");
CREATE INDEX "Subscription_currentPeriodEnd_idx" ON "Subscription" ("currentPeriodEnd");
CREATE INDEX "Subscription_planId_idx" ON "Subscription" ("planId");
CREATE INDEX "Subscription_status_currentPeriodEnd_idx" ON "Subscription" ("status", "currentPeriodEnd");

CREATE TABLE "DiagnosticTest" (
    "id"              TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "code"            TEXT NOT NULL,
    "name"            TEXT NOT NULL,
    "description"     TEXT,
    "sampleType"      TEXT NOT NULL,
    "priceCents"      INTEGER NOT NULL CHECK ("priceCents" >= 0),
    "turnaroundHours" INTEGER NOT NULL,
    "active"          INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX "DiagnosticTest_code_key" ON "DiagnosticTest" ("code");

CREATE TABLE "HealthPackage" (
    "id"          TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))),
    "name"        TEXT NOT NULL,
    "description" TEXT,
    "priceCents"  INTEGER NOT NULL CHECK ("priceCents" >= 0),
    "testCodes"   TEXT NOT NULL DEFAULT '[]',
    "active"      INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX "HealthPackage_name_key" ON "HealthPackage" ("name");
