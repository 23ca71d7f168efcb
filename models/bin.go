package models

import (
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// Bin is an inspector receiver: requests to /inspect/<id> are captured into it.
type Bin struct {
	ID                  string `gorm:"primaryKey"`
	Name                string
	Secret              string // verifies signatures; empty when none or when WebhookID is used
	WebhookID           string // linked webhook whose current secret verifies; empty when none
	ResponseStatus      int
	ResponseBody        string
	ResponseContentType string
	ResponseDelayMS     int
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Capture is one request received by a bin, body kept byte for byte. It is keyed by its bin
// and its id: every read and delete names the bin.
type Capture struct {
	ID         string `gorm:"primaryKey"`
	BinID      string `gorm:"primaryKey"`
	Method     string
	Path       string
	Query      string // raw query string, as sent
	Headers    string // JSON object of name → values
	Body       []byte
	Size       int64
	RemoteAddr string
	ReceivedAt time.Time
	Verdicts   string // JSON, computed once at receipt so later secret changes do not rewrite history
	Rejected   string // why the request was refused (e.g. body too large); empty when accepted
	// Answered is the HTTP status the bin answered with (its configured one, 413 for a
	// rejected body); 0 on captures stored before it was kept.
	Answered int
}

// NewBinID returns a bin id: a UUIDv7 (time-ordered and, within this process, strictly
// increasing even within one millisecond, so ids double as the list cursor) followed by 64
// more random bits, so the public /inspect/<id> URL carries 138 unguessable bits.
func NewBinID() string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return hex.EncodeToString(u[:]) + RandomToken(8)
}
