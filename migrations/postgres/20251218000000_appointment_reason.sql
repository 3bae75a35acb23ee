-- Appointments record why the patient booked (a nullable column: no table rewrite, and the
-- lock it takes is brief).
ALTER TABLE "Appointment" ADD COLUMN "reason" TEXT;
