-- Reverts the initial schema: drops every table of the Unified Health Platform.
DROP TABLE "Appointment";
DROP TABLE "Subscription";
DROP TABLE "RefreshToken";
DROP TABLE "Patient";
DROP TABLE "Provider";
DROP TABLE "Plan";
DROP TABLE "HealthPackage";
DROP TABLE "DiagnosticTest";
DROP TABLE "User";
