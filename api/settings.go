package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/inspector"
)

// ServerSettings are the settings of the running server that change what a user may do or
// should expect, as the flags set them. The admin UI states them from here rather than from
// defaults it would have to guess; nothing secret is among them.
type ServerSettings struct {
	DeliveryTimeout  time.Duration
	RetrySchedule    []time.Duration // delays before attempts 2, 3, …; empty: one attempt
	AutoDisableAfter time.Duration   // 0: never
	Retention        time.Duration   // 0: keeps everything
	InspectorRate    float64         // captures per second per bin; 0: unlimited
	// InspectorBusyRate is captures per second the bins together take while deliveries are
	// in flight; 0: captures never yield.
	InspectorBusyRate float64
}

// Settings is what GET /api/v1/settings answers. Durations are in seconds.
type Settings struct {
	Version                 string    `json:"version" example:"1.4.0"`
	DeliveryTimeoutSeconds  float64   `json:"delivery_timeout_seconds" example:"10"`
	AllowHTTP               bool      `json:"allow_http" example:"false"`
	AllowPrivateTargets     bool      `json:"allow_private_targets" example:"false"`
	RetryScheduleSeconds    []float64 `json:"retry_schedule_seconds" example:"10,60,300,1800,7200,21600,43200,86400"`
	MaxAttempts             int       `json:"max_attempts" example:"9"`
	RetryWindowSeconds      float64   `json:"retry_window_seconds" example:"160170"`
	AutoDisableAfterSeconds float64   `json:"auto_disable_after_seconds" example:"432000"`
	RetentionSeconds        float64   `json:"retention_seconds" example:"2592000"`
	MaxBodyBytes            int       `json:"max_body_bytes" example:"1048576"`
	InspectorMaxBodyBytes   int       `json:"inspector_max_body_bytes" example:"1048576"`
	InspectorRate           float64   `json:"inspector_rate" example:"50"`
	// Captures per second all bins together take while webhooks are being delivered; 0: they never wait for deliveries.
	InspectorBusyRate float64 `json:"inspector_busy_rate" example:"200"`
} // @name Settings

// settings builds the answer once: the flags do not change while the process runs.
func (s *Server) settings() Settings {
	st := s.cfg.Settings
	out := Settings{
		Version:                 s.cfg.Version,
		DeliveryTimeoutSeconds:  st.DeliveryTimeout.Seconds(),
		AllowHTTP:               s.cfg.AllowHTTP,
		AllowPrivateTargets:     s.cfg.AllowPrivate,
		RetryScheduleSeconds:    make([]float64, 0, len(st.RetrySchedule)),
		MaxAttempts:             len(st.RetrySchedule) + 1,
		AutoDisableAfterSeconds: st.AutoDisableAfter.Seconds(),
		RetentionSeconds:        st.Retention.Seconds(),
		MaxBodyBytes:            MaxBodyBytes,
		InspectorMaxBodyBytes:   inspector.MaxBodyBytes,
		InspectorRate:           st.InspectorRate,
		InspectorBusyRate:       st.InspectorBusyRate,
	}
	for _, d := range st.RetrySchedule {
		out.RetryScheduleSeconds = append(out.RetryScheduleSeconds, d.Seconds())
		out.RetryWindowSeconds += d.Seconds()
	}
	return out
}

// getSettings returns the server's settings that the UI states.
//
//	@Summary		Server settings
//	@Description	The settings this server was started with that change what a webhook may be and what a receiver should expect: the per-attempt delivery timeout, whether `http://` URLs and private targets are accepted, the retry schedule (`retry_schedule_seconds` are the delays before attempts 2, 3, …; `max_attempts` counts the first one), auto-disable and retention (`0` means never), and the request body limits. Durations are in seconds. Nothing secret is included.
//	@Tags			settings
//	@Produce		json
//	@Security		BearerAuth
//	@Success		200	{object}	Settings
//	@Router			/api/v1/settings [get]
func (s *Server) getSettings(c *gin.Context) {
	c.JSON(http.StatusOK, s.settings())
}
