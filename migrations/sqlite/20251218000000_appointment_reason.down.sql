ALTER TABLE "Appointment" DROP COLUMN "reason";
