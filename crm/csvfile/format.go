package csvfile

import (
	"maps"
	"slices"
)

// Format is the kind of file, with a preset column mapping for the reports
// vendors actually export. The values are the GraphQL FileFormat enum.
type Format string

// The formats.
const (
	// HoneyBookLeads is HoneyBook's leads report: one row per person per
	// project, a full name per row.
	HoneyBookLeads Format = "HONEYBOOK_LEADS_CSV"
	// HoneyBookBooked is HoneyBook's booked clients report: one row per
	// person per project, first and last names.
	HoneyBookBooked Format = "HONEYBOOK_BOOKED_CSV"
	// LightBlue is a Light Blue export. Its headers are not published: the
	// preset assumes the names of Light Blue's own data model, one row per
	// contact per shoot, dates dd/mm/yyyy.
	LightBlue Format = "LIGHTBLUE_CSV"
	// Generic is any other CSV (Dubsado, 17hats, Studio Ninja, Pixieset…),
	// read with an explicit mapping.
	Generic Format = "GENERIC_CSV"
)

// The fields a mapping can name, the keys of a mapping.
const (
	// FieldExternalID is the CRM's own record id. When unmapped, a record's
	// id is a hash of its project (or email or name) and event date, so the
	// same file imported again updates the same records.
	FieldExternalID = "externalId"
	// FieldProject names the project (wedding, shoot). When mapped, adjacent
	// rows with the same project and event date are one couple.
	FieldProject         = "project"
	FieldFirstName       = "firstName"
	FieldLastName        = "lastName"
	FieldMaidenName      = "maidenName"
	FieldFullName        = "fullName"
	FieldPartnerFirst    = "partnerFirstName"
	FieldPartnerLast     = "partnerLastName"
	FieldPartnerFull     = "partnerFullName"
	FieldEmail           = "email"
	FieldPhone           = "phone"
	FieldEventDate       = "eventDate"
	FieldVenue           = "venue"
	FieldJobType         = "jobType"
	FieldStage           = "stage"
	FieldLeadSource      = "leadSource"
	FieldLeadSourceOther = "leadSourceText"
	FieldBookingValue    = "bookingValue"
	FieldGuestCount      = "guestCount"
	FieldCreatedAt       = "createdAt"
	FieldBookedAt        = "bookedAt"
)

// Fields lists every field a mapping may name, in a stable order.
func Fields() []string {
	return []string{FieldExternalID, FieldProject, FieldFirstName, FieldLastName, FieldMaidenName, FieldFullName,
		FieldPartnerFirst, FieldPartnerLast, FieldPartnerFull, FieldEmail, FieldPhone, FieldEventDate, FieldVenue, FieldJobType,
		FieldStage, FieldLeadSource, FieldLeadSourceOther, FieldBookingValue, FieldGuestCount, FieldCreatedAt, FieldBookedAt}
}

// Formats lists the formats.
func Formats() []Format { return []Format{HoneyBookLeads, HoneyBookBooked, LightBlue, Generic} }

// Preset is what a format assumes about a file.
type Preset struct {
	// Mapping is field name → column header.
	Mapping map[string]string
	// DayFirst reads 03/04/2026 as 3 April (Light Blue, a UK product).
	DayFirst bool
	// Currency is the ISO 4217 code of money columns without a symbol.
	Currency string
	// CountryCode is the calling code of phone numbers written without one.
	CountryCode string
	// Stage is the stage of a record whose file says none.
	Stage string
}

var presets = map[Format]Preset{
	HoneyBookLeads: {Mapping: map[string]string{
		FieldProject: "Project Name", FieldFullName: "Full Name", FieldEmail: "Email Address", FieldPhone: "Phone Number",
		FieldEventDate: "Project Date", FieldCreatedAt: "Lead Created Date", FieldBookedAt: "Booked Date",
		FieldBookingValue: "Total Project Value", FieldLeadSource: "Lead Source", FieldLeadSourceOther: "Lead Source Open Text",
	}, Currency: "USD", CountryCode: "1", Stage: "LEAD"},
	HoneyBookBooked: {Mapping: map[string]string{
		FieldFirstName: "First Name", FieldLastName: "Last Name", FieldEmail: "Email", FieldProject: "Project Name",
		FieldJobType: "Project Type", FieldLeadSource: "Project Source", FieldCreatedAt: "Project Creation Date",
		FieldEventDate: "Project Date", FieldBookedAt: "Booked Date", FieldBookingValue: "Total Booked Value",
	}, Currency: "USD", CountryCode: "1", Stage: "BOOKED"},
	LightBlue: {Mapping: map[string]string{
		FieldFirstName: "ContactNameFirst", FieldLastName: "ContactNameLast", FieldMaidenName: "ContactNameMaiden",
		FieldEmail: "ContactEmail", FieldPhone: "ContactPhoneMobile", FieldProject: "ShootTitle", FieldJobType: "ShootType",
		FieldEventDate: "ShootDate", FieldVenue: "ShootLocation", FieldLeadSource: "ShootReferralSource", FieldStage: "ShootStatus",
	}, DayFirst: true, Currency: "GBP", CountryCode: "44", Stage: "LEAD"},
	Generic: {Mapping: map[string]string{}, Currency: "USD", CountryCode: "1", Stage: "LEAD"},
}

// PresetFor returns the preset of a format (a copy the caller may change),
// and false for an unknown format. GENERIC_CSV's mapping is empty.
func PresetFor(f Format) (Preset, bool) {
	p, ok := presets[f]
	p.Mapping = maps.Clone(p.Mapping)
	return p, ok
}

// PresetMapping returns a format's preset mapping (field → column header),
// for the API to show; nil for an unknown format.
func PresetMapping(f Format) map[string]string {
	p, ok := PresetFor(f)
	if !ok {
		return nil
	}
	return p.Mapping
}

func validField(f string) bool { return slices.Contains(Fields(), f) }
