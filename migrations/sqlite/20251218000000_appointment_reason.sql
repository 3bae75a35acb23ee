-- Appointments record why the patient booked (a nullable column).
ALTER TABLE "Appointment" ADD COLUMN "reason" TEXT;
