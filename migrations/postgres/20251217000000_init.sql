-- Unified Health Platform schema, with the indexes of the Database Production Preparation
-- Guide ("Schema Optimizations > Index Strategy"). Names follow Prisma's conventions, so an
-- existing Prisma client keeps working. The tables are new, so their indexes are created in the
-- same transaction (nothing can be locked out of an empty table).

CREATE TABLE "User" (
    "id"           TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "email"        TEXT NOT NULL,
    "passwordHash" TEXT NOT NULL,
    "firstName"    TEXT,
    "lastName"     TEXT,
    "role"         TEXT NOT NULL DEFAULT 'PATIENT' CHECK ("role" IN ('PATIENT', 'PROVIDER', 'ADMIN')),
    "status"       TEXT NOT NULL DEFAULT 'ACTIVE' CHECK ("status" IN ('ACTIVE', 'INACTIVE', 'SUSPENDED')),
    "createdAt"    TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updatedAt"    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "User_email_key" ON "User" ("email");
CREATE INDEX "User_role_idx" ON "User" ("role");
CREATE INDEX "User_status_idx" ON "User" ("status");
CREATE INDEX "User_role_status_idx" ON "User" ("role", "status");
CREATE INDEX "User_createdAt_idx" ON "User" ("createdAt");

CREATE TABLE "RefreshToken" (
    "id"        TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "token"     TEXT NOT NULL,
    "userId"    TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "expiresAt" TIMESTAMPTZ NOT NULL,
    "createdAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "RefreshToken_token_key" ON "RefreshToken" ("token");
CREATE INDEX "RefreshToken_userId_idx" ON "RefreshToken" ("userId");
CREATE INDEX "RefreshToken_expiresAt_idx" ON "RefreshToken" ("expiresAt");
CREATE INDEX "RefreshToken_userId_expiresAt_idx" ON "RefreshToken" ("userId", "expiresAt");

CREATE TABLE "Patient" (
    "id"                  TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "userId"              TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "medicalRecordNumber" TEXT NOT NULL,
    "dateOfBirth"         DATE,
    "phone"               TEXT,
    "createdAt"           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "Patient_userId_key" ON "Patient" ("userId");
CREATE UNIQUE INDEX "Patient_medicalRecordNumber_key" ON "Patient" ("medicalRecordNumber");

CREATE TABLE "Provider" (
    "id"            TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "userId"        TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "licenseNumber" TEXT NOT NULL,
    "specialty"     TEXT[] NOT NULL DEFAULT '{}',
    "available"     BOOLEAN NOT NULL DEFAULT true,
    "createdAt"     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "Provider_userId_key" ON "Provider" ("userId");
CREATE UNIQUE INDEX "Provider_licenseNumber_key" ON "Provider" ("licenseNumber");
-- An array index: "WHERE specialty @> ARRAY['cardiology']" filters by specialty.
CREATE INDEX "Provider_specialty_idx" ON "Provider" USING GIN ("specialty");
CREATE INDEX "Provider_available_idx" ON "Provider" ("available");

CREATE TABLE "Appointment" (
    "id"              TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "patientId"       TEXT NOT NULL REFERENCES "Patient" ("id") ON DELETE CASCADE,
    "providerId"      TEXT NOT NULL REFERENCES "Provider" ("id") ON DELETE RESTRICT,
    "scheduledAt"     TIMESTAMPTZ NOT NULL,
    "durationMinutes" BIGINT NOT NULL DEFAULT 30,
    "status"          TEXT NOT NULL DEFAULT 'SCHEDULED'
                      CHECK ("status" IN ('SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    "notes"           TEXT,
    "createdAt"       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX "Appointment_patientId_idx" ON "Appointment" ("patientId");
CREATE INDEX "Appointment_providerId_idx" ON "Appointment" ("providerId");
CREATE INDEX "Appointment_scheduledAt_idx" ON "Appointment" ("scheduledAt");
CREATE INDEX "Appointment_status_idx" ON "Appointment" ("status");
CREATE INDEX "Appointment_patientId_scheduledAt_idx" ON "Appointment" ("patientId", "scheduledAt");
CREATE INDEX "Appointment_providerId_scheduledAt_idx" ON "Appointment" ("providerId", "scheduledAt");

CREATE TABLE "Plan" (
    "id"          TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "name"        TEXT NOT NULL,
    "description" TEXT,
    "priceCents"  BIGINT NOT NULL CHECK ("priceCents" >= 0),
    "currency"    TEXT NOT NULL DEFAULT 'USD',
    "interval"    TEXT NOT NULL CHECK ("interval" IN ('MONTH', 'YEAR')),
    "features"    JSONB NOT NULL DEFAULT '[]',
    "active"      BOOLEAN NOT NULL DEFAULT true,
    "createdAt"   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX "Plan_name_key" ON "Plan" ("name");
CREATE INDEX "Plan_active_idx" ON "Plan" ("active");
CREATE INDEX "Plan_interval_idx" ON "Plan" ("interval");
CREATE INDEX "Plan_active_interval_idx" ON "Plan" ("active", "interval");

CREATE TABLE "Subscription" (
    "id"                 TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "userId"             TEXT NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
    "planId"             TEXT NOT NULL REFERENCES "Plan" ("id") ON DELETE RESTRICT,
    "status"             TEXT NOT NULL DEFAULT 'ACTIVE'
                         CHECK ("status" IN ('ACTIVE', 'PAST_DUE', 'CANCELLED', 'EXPIRED', 'TRIALING')),
    "currentPeriodStart" TIMESTAMPTZ NOT NULL,
    "currentPeriodEnd"   TIMESTAMPTZ NOT NULL,
    "cancelAtPeriodEnd"  BOOLEAN NOT NULL DEFAULT false,
    "createdAt"          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX "Subscription_userId_idx" ON "Subscription" ("userId");
CREATE INDEX "Subscription_status_idx" ON "Subscription" ("status");
CREATE INDEX "Subscription_currentPeriodEnd_idx" ON "Subscription" ("currentPeriodEnd");
CREATE INDEX "Subscription_planId_idx" ON "Subscription" ("planId");
CREATE INDEX "Subscription_status_currentPeriodEnd_idx" ON "Subscription" ("status", "currentPeriodEnd");

CREATE TABLE "DiagnosticTest" (
    "id"              TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "code"            TEXT NOT NULL,
    "name"            TEXT NOT NULL,
    "description"     TEXT,
    "sampleType"      TEXT NOT NULL,
    "priceCents"      BIGINT NOT NULL CHECK ("priceCents" >= 0),
    "turnaroundHours" BIGINT NOT NULL,
    "active"          BOOLEAN NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX "DiagnosticTest_code_key" ON "DiagnosticTest" ("code");

CREATE TABLE "HealthPackage" (
    "id"          TEXT PRIMARY KEY DEFAULT gen_random_uuid()::text,
    "name"        TEXT NOT NULL,
    "description" TEXT,
    "priceCents"  BIGINT NOT NULL CHECK ("priceCents" >= 0),
    "testCodes"   TEXT[] NOT NULL DEFAULT '{}',
    "active"      BOOLEAN NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX "HealthPackage_name_key" ON "HealthPackage" ("name");
