package sqlcommon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// CreateBin stores a new bin.
func (s *Base) CreateBin(ctx context.Context, b *models.Bin) error {
	now := time.Now().UTC()
	if b.ID == "" {
		b.ID = models.NewBinID()
	}
	b.CreatedAt, b.UpdatedAt = now, now
	if err := s.Writer.WithContext(ctx).Create(b).Error; err != nil {
		return fmt.Errorf("create bin: %w", err)
	}
	return nil
}

// GetBin reads one bin.
func (s *Base) GetBin(ctx context.Context, id string) (*models.Bin, error) {
	return getByID[models.Bin](ctx, s.Reader, id, "get bin")
}

// ListBins returns one page of bins, newest first.
func (s *Base) ListBins(ctx context.Context, p models.Page) ([]*models.Bin, string, error) {
	q := s.Reader.WithContext(ctx).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	var list []*models.Bin
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list bins: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(b *models.Bin) string { return b.ID })
	return list, next, nil
}

// UpdateBin saves b.
func (s *Base) UpdateBin(ctx context.Context, b *models.Bin) error {
	b.UpdatedAt = time.Now().UTC()
	res := s.Writer.WithContext(ctx).Select("*").Omit("created_at").Where("id = ?", b.ID).Updates(b)
	if res.Error != nil {
		return fmt.Errorf("update bin: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return models.ErrNotFound
	}
	return nil
}

// DeleteBin removes a bin and its captures.
func (s *Base) DeleteBin(ctx context.Context, id string) error {
	return s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(`DELETE FROM bins WHERE id = ?`, id)
		if res.Error != nil {
			return fmt.Errorf("delete bin: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return models.ErrNotFound
		}
		if err := tx.Exec(`DELETE FROM captures WHERE bin_id = ?`, id).Error; err != nil {
			return fmt.Errorf("delete captures: %w", err)
		}
		s.bounds.forget(id)
		s.hooks.BinDeleted(id)
		return nil
	})
}

// InsertCaptures stores captures atomically (Hooks.WriteCaptures) and keeps each of their bins to its
// newest keep captures without a pruning job of its own: the oldest beyond keep are deleted
// when a write finds the bin due (see captureBounds), a tenth of keep at a time, in that
// write's transaction or just after it (the driver's choice), and reads never show more than
// keep meanwhile. When a bin no longer exists nothing is stored and the error is
// models.ErrNotFound (the caller retries the others alone).
func (s *Base) InsertCaptures(ctx context.Context, cs []*models.Capture, keep int) error {
	var bins []string
	for _, c := range cs {
		if c.ID == "" {
			c.ID = models.NewID("req")
		}
		if c.Body == nil {
			c.Body = []byte{} // the column is NOT NULL; a nil slice would be written as NULL
		}
		if !slices.Contains(bins, c.BinID) {
			bins = append(bins, c.BinID)
		}
	}
	var due []string
	if keep > 0 {
		due = s.bounds.due(cs, bins, keep)
	}
	found, err := s.hooks.WriteCaptures(ctx, s.Writer, CaptureWrite{Captures: cs, Bins: bins, Due: due, Keep: keep})
	if err != nil {
		return fmt.Errorf("insert captures: %w", err)
	}
	if !found {
		return models.ErrNotFound
	}
	if keep > 0 {
		s.bounds.stored(cs, due)
	}
	return nil
}

// CaptureWrite is a group of captures for a driver to store (Hooks.WriteCaptures).
type CaptureWrite struct {
	Captures []*models.Capture
	Bins     []string // the captures' distinct bins, each of which must exist
	Due      []string // bins to bound to their newest Keep captures, these included
	Keep     int
}

// CaptureCols are the columns a capture's row is written with, in the order of CaptureRow.
var CaptureCols = []string{"id", "bin_id", "method", "path", "query", "headers", "body", "size",
	"remote_addr", "received_at", "verdicts", "rejected", "answered"}

// CaptureRow appends the values of the row of w's i-th capture.
func (w CaptureWrite) CaptureRow(i int, args []any) []any {
	c := w.Captures[i]
	return append(args, c.ID, c.BinID, c.Method, c.Path, c.Query, c.Headers, c.Body, c.Size,
		c.RemoteAddr, c.ReceivedAt.UTC(), c.Verdicts, c.Rejected, c.Answered)
}

// ListCaptures returns one page of a bin's newest keep captures (all when keep is 0), newest
// first.
//
// A list is a page of summaries: the body is cut to its first preview bytes, path and query to
// 1 KiB, and headers are left out, in the query itself, so a page of 1 MiB captures costs what
// a page of small ones does (a reader fetches one capture whole with GetCapture).
func (s *Base) ListCaptures(ctx context.Context, binID string, p models.Page, preview, keep int) ([]*models.Capture, string, error) {
	q := s.Reader.WithContext(ctx).Select(`id, bin_id, method, substr(path, 1, 1024) AS path, substr(query, 1, 1024) AS query,
		substr(body, 1, ?) AS body, size, remote_addr, received_at, verdicts, rejected, answered`, preview).
		Where("bin_id = ?", binID).Order("id DESC").Limit(p.Limit + 1)
	if p.Cursor != "" {
		q = q.Where("id < ?", p.Cursor)
	}
	// Captures beyond keep that the bin's next bound will delete stay out of sight; a first
	// page within keep cannot reach them, so it skips the walk to the keep-th newest.
	if keep > 0 && (p.Cursor != "" || p.Limit+1 > keep) {
		q = q.Where(`id >= COALESCE((SELECT id FROM captures WHERE bin_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?), '')`, binID, keep-1)
	}
	var list []*models.Capture
	if err := q.Find(&list).Error; err != nil {
		return nil, "", fmt.Errorf("list captures: %w", err)
	}
	list, next := pageOf(list, p.Limit, func(c *models.Capture) string { return c.ID })
	return list, next, nil
}

// GetCapture reads one capture of a bin.
func (s *Base) GetCapture(ctx context.Context, binID, id string) (*models.Capture, error) {
	var c models.Capture
	err := s.Reader.WithContext(ctx).Where("id = ? AND bin_id = ?", id, binID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, models.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get capture: %w", err)
	}
	return &c, nil
}

// CountCaptures returns how many captures a bin holds, at most keep (when keep is not 0): what
// ListCaptures would show.
func (s *Base) CountCaptures(ctx context.Context, binID string, keep int) (int64, error) {
	var n int64
	if err := s.Reader.WithContext(ctx).Model(&models.Capture{}).Where("bin_id = ?", binID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count captures: %w", err)
	}
	if keep > 0 {
		n = min(n, int64(keep))
	}
	return n, nil
}
