package models

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
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

// Capture is one request received by a bin, body kept byte for byte.
type Capture struct {
	ID         string `gorm:"primaryKey"`
	BinID      string
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

// CreateBin stores a new bin.
func (s *Store) CreateBin(ctx context.Context, b *Bin) error {
	now := time.Now().UTC()
	if b.ID == "" {
		b.ID = NewBinID()
	}
	b.CreatedAt, b.UpdatedAt = now, now
	if err := s.W.WithContext(ctx).Create(b).Error; err != nil {
		return fmt.Errorf("create bin: %w", err)
	}
	return nil
}

// GetBin reads one bin.
func (s *Store) GetBin(ctx context.Context, id string) (*Bin, error) {
	var b Bin
	err := s.R.WithContext(ctx).Where("id = ?", id).Take(&b).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get bin: %w", err)
	}
	return &b, nil
}

// ListBins returns one page of bins, newest first.
func (s *Store) ListBins(ctx context.Context, p Page) ([]*Bin, string, error) {
	q := s.R.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*Bin
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list bins: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(b *Bin) string { return b.ID })
	return list, next, nil
}

// UpdateBin saves b.
func (s *Store) UpdateBin(ctx context.Context, b *Bin) error {
	b.UpdatedAt = time.Now().UTC()
	res := s.W.WithContext(ctx).Select("*").Omit("created_at").Where("id = ?", b.ID).Updates(b)
	if res.Error != nil {
		return fmt.Errorf("update bin: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteBin removes a bin and its captures.
func (s *Store) DeleteBin(ctx context.Context, id string) error {
	return s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM bins WHERE id = ?`, id)
		if res.Error != nil {
			return fmt.Errorf("delete bin: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Exec(`DELETE FROM captures WHERE bin_id = ?`, id).Error; err != nil {
			return fmt.Errorf("delete captures: %w", err)
		}
		return nil
	})
}

// InsertCapture stores a capture and, in the same transaction, drops the bin's oldest
// captures beyond keep, so a busy bin stays bounded without a separate pruning job.
func (s *Store) InsertCapture(ctx context.Context, c *Capture, keep int) error {
	if c.ID == "" {
		c.ID = NewID("req")
	}
	if c.Body == nil {
		c.Body = []byte{} // the column is NOT NULL; a nil slice would be written as NULL
	}
	err := s.W.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(c).Error; err != nil {
			return err
		}
		if keep <= 0 {
			return nil
		}
		// Ids sort by time, so everything older than the keep-th newest goes.
		var oldestKept []string
		if err := tx.Raw(`SELECT id FROM captures WHERE bin_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?`,
			c.BinID, keep-1).Scan(&oldestKept).Error; err != nil {
			return err
		}
		if len(oldestKept) == 0 {
			return nil
		}
		return tx.Exec(`DELETE FROM captures WHERE bin_id = ? AND id < ?`, c.BinID, oldestKept[0]).Error
	})
	if err != nil {
		return fmt.Errorf("insert capture: %w", err)
	}
	return nil
}

// ListCaptures returns one page of a bin's captures, newest first.
func (s *Store) ListCaptures(ctx context.Context, binID string, p Page) ([]*Capture, string, error) {
	q := s.R.WithContext(ctx).Where("bin_id = ?", binID).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*Capture
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list captures: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(c *Capture) string { return c.ID })
	return list, next, nil
}

// GetCapture reads one capture of a bin.
func (s *Store) GetCapture(ctx context.Context, binID, id string) (*Capture, error) {
	var c Capture
	err := s.R.WithContext(ctx).Where("id = ? AND bin_id = ?", id, binID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get capture: %w", err)
	}
	return &c, nil
}

// CountCaptures returns how many captures a bin holds.
func (s *Store) CountCaptures(ctx context.Context, binID string) (int64, error) {
	var n int64
	if err := s.R.WithContext(ctx).Model(&Capture{}).Where("bin_id = ?", binID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count captures: %w", err)
	}
	return n, nil
}
