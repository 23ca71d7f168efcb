package sqlcommon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hookrelay/hookrelay/models"
	"gorm.io/gorm"
)

// CreateReplayJob stores a new running replay job.
func (s *Base) CreateReplayJob(ctx context.Context, j *models.ReplayJob) error {
	now := time.Now().UTC()
	if j.ID == "" {
		j.ID = models.NewID("rpl")
	}
	j.Status, j.CreatedAt, j.UpdatedAt = models.ReplayRunning, now, now
	if err := s.Writer.WithContext(ctx).Create(j).Error; err != nil {
		return fmt.Errorf("create replay job: %w", err)
	}
	return nil
}

// StepReplayJob queues the next batch of a running job's events and moves its position past
// them, in one transaction: a crash between batches loses nothing and repeats nothing, and the
// next step (in this process after a restart, or in another replica) goes on from there. The
// no-op UPDATE takes the job's row first, so two replicas stepping one job take turns. It
// returns the job as it is afterwards and how many deliveries the step queued; a job that
// queued its last event is done, one whose webhook went away or was disabled is stopped.
func (s *Base) StepReplayJob(ctx context.Context, id string, batch int) (*models.ReplayJob, int, error) {
	var j models.ReplayJob
	n := 0
	err := s.Writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := time.Now().UTC()
		res := tx.Exec(`UPDATE replay_jobs SET updated_at = ? WHERE id = ? AND status = ?`, now, id, models.ReplayRunning)
		if res.Error != nil {
			return res.Error
		}
		if err := tx.Where("id = ?", id).Take(&j).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return models.ErrNotFound
			}
			return err
		}
		if res.RowsAffected == 0 {
			return nil // finished already
		}
		f := ReplayFilter{WebhookID: j.WebhookID, Types: j.TypeList(), Since: j.Since, Until: j.Until, OnlyFailed: j.OnlyFailed}
		var err error
		var last string
		n, last, err = s.queueReplayBatch(tx, f, j.AfterEvent, batch, j.ID)
		switch {
		case errors.Is(err, models.ErrNotFound) || errors.Is(err, models.ErrConflict):
			j.Status, j.Error, j.FinishedAt = models.ReplayStopped, "the webhook was deleted or disabled", &now
			if errors.Is(err, models.ErrConflict) {
				j.Error = "the webhook was disabled"
			}
		case err != nil:
			return err
		case n == 0:
			j.Status, j.FinishedAt = models.ReplayDone, &now
		}
		j.AfterEvent, j.Queued, j.UpdatedAt = last, j.Queued+int64(n), now
		return tx.Exec(`UPDATE replay_jobs SET after_event = ?, queued = ?, status = ?, error = ?, finished_at = ?, updated_at = ? WHERE id = ?`,
			j.AfterEvent, j.Queued, j.Status, j.Error, j.FinishedAt, now, id).Error
	})
	if err != nil {
		if errors.Is(err, models.ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("step replay job: %w", err)
	}
	if n > 0 {
		s.queued(Queued{Due: map[string]int64{j.WebhookID: time.Now().UnixMilli()}})
	}
	return &j, n, nil
}

// GetReplayJob reads one replay job.
func (s *Base) GetReplayJob(ctx context.Context, id string) (*models.ReplayJob, error) {
	return getByID[models.ReplayJob](ctx, s.Reader, id, "get replay job")
}

// ListReplayJobs returns a webhook's most recent replay jobs, newest first.
func (s *Base) ListReplayJobs(ctx context.Context, webhookID string, limit int) ([]*models.ReplayJob, error) {
	var list []*models.ReplayJob
	if err := s.Reader.WithContext(ctx).Where("webhook_id = ?", webhookID).Order("id DESC").Limit(limit).Find(&list).Error; err != nil {
		return nil, fmt.Errorf("list replay jobs: %w", err)
	}
	return list, nil
}

// RunningReplayJobs returns the ids of the jobs still running, oldest first: what a process
// resumes at start.
func (s *Base) RunningReplayJobs(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.Reader.WithContext(ctx).Model(&models.ReplayJob{}).Where("status = ?", models.ReplayRunning).
		Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("running replay jobs: %w", err)
	}
	return ids, nil
}
