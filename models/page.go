package models

// Page is a cursor page request. Ids are time-ordered, so the cursor is the last id seen.
type Page struct {
	Limit  int
	Cursor string
}
