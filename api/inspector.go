package api

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hookrelay/hookrelay/inspector"
	"github.com/hookrelay/hookrelay/models"
)

// Bin is an inspector bin as the API shows it. The secret itself is never returned.
type Bin struct {
	ID        string      `json:"id" example:"0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"`
	Name      string      `json:"name" example:"Staging test"`
	URL       string      `json:"url" example:"http://localhost:8080/inspect/0190c3f1a2b3c6b1e1d4f3a2b5c8d7e6f9a0b1c2d3e4"`
	HasSecret bool        `json:"has_secret" example:"false"`
	WebhookID *string     `json:"webhook_id" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Response  BinResponse `json:"response"`
	CreatedAt time.Time   `json:"created_at"`
} // @name Bin

// BinResponse is what a bin answers to every request it captures.
type BinResponse struct {
	Status      int    `json:"status" example:"200" minimum:"200" maximum:"599"`
	Body        string `json:"body" example:"{\"ok\":true}"`
	ContentType string `json:"content_type" example:"application/json"`
	DelayMS     int    `json:"delay_ms" example:"0" minimum:"0" maximum:"30000"`
} // @name BinResponse

// BinInput creates or (partially) updates a bin. secret and webhook_id are alternatives:
// setting one clears the other; null removes it.
type BinInput struct {
	Name      Optional[string]           `json:"name" example:"Staging test"`
	Secret    Optional[string]           `json:"secret" example:"your-webhook-secret"`
	WebhookID Optional[string]           `json:"webhook_id" example:"wh_0190c3f1a2b34c5d8e9f0a1b2c3d4e5f"`
	Response  Optional[BinResponseInput] `json:"response"`
} // @name BinInput

// BinResponseInput changes the fields of a bin's response that it names. The decoder holds
// status and delay_ms to their bounds; 1xx cannot be a final response (net/http would send it
// as informational, then 200), and the delay's maximum is inspector.MaxResponseDelay.
type BinResponseInput struct {
	Status      Optional[int]    `json:"status" example:"200" minimum:"200" maximum:"599"`
	Body        Optional[string] `json:"body" example:"{\"ok\":true}"`
	ContentType Optional[string] `json:"content_type" example:"application/json"`
	DelayMS     Optional[int]    `json:"delay_ms" example:"0" minimum:"0" maximum:"30000"`
} // @name BinResponseInput

// ForwardInput names where to send a captured request again.
type ForwardInput struct {
	URL string `json:"url" example:"http://localhost:3000/webhook"`
} // @name ForwardInput

// BinStore is what the inspector's bin and capture handlers need.
type BinStore interface {
	CreateBin(ctx context.Context, b *models.Bin) error
	GetBin(ctx context.Context, id string) (*models.Bin, error)
	ListBins(ctx context.Context, p models.Page) ([]*models.Bin, string, error)
	UpdateBin(ctx context.Context, b *models.Bin) error
	DeleteBin(ctx context.Context, id string) error
	ListCaptures(ctx context.Context, binID string, p models.Page, preview, keep int) ([]*models.Capture, string, error)
	GetCapture(ctx context.Context, binID, id string) (*models.Capture, error)
	GetWebhook(ctx context.Context, id string) (*models.Webhook, error)
}

// inspectorAPI serves the inspector's bins, captures, live socket and receiver.
type inspectorAPI struct {
	insp *inspector.Inspector
	bins BinStore
}

// InspectorRoutes registers the inspector's routes; hand it to Config.Extra.
func InspectorRoutes(insp *inspector.Inspector, bins BinStore) func(r *gin.Engine, authed *gin.RouterGroup) {
	h := &inspectorAPI{insp: insp, bins: bins}
	return func(r *gin.Engine, authed *gin.RouterGroup) {
		authed.GET("/inspector/bins", h.listBins)
		authed.POST("/inspector/bins", h.createBin)
		authed.GET("/inspector/bins/:id", h.getBin)
		authed.PATCH("/inspector/bins/:id", h.updateBin)
		authed.DELETE("/inspector/bins/:id", h.deleteBin)
		authed.GET("/inspector/bins/:id/requests", h.listCaptures)
		authed.GET("/inspector/bins/:id/requests/:rid", h.getCapture)
		authed.POST("/inspector/bins/:id/requests/:rid/forward", h.forwardCapture)
		authed.GET("/inspector/bins/:id/ws", h.binSocket)
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch,
			http.MethodDelete, http.MethodHead, http.MethodOptions} {
			r.Handle(m, "/inspect/:id", h.receive)
			r.Handle(m, "/inspect/:id/*path", h.receive)
		}
	}
}

func (h *inspectorAPI) binOut(b *models.Bin) Bin {
	out := Bin{ID: b.ID, Name: b.Name, URL: h.insp.BinURL(b.ID), HasSecret: b.Secret != "", CreatedAt: b.CreatedAt,
		Response: BinResponse{Status: b.ResponseStatus, Body: b.ResponseBody, ContentType: b.ResponseContentType,
			DelayMS: b.ResponseDelayMS}}
	if b.WebhookID != "" {
		id := b.WebhookID
		out.WebhookID = &id
	}
	return out
}

// applyBinInput validates the given fields onto b.
func (h *inspectorAPI) applyBinInput(c *gin.Context, in *BinInput, b *models.Bin) error {
	verr := &models.ValidationError{}
	if name, ok := in.Name.get(verr, "name"); ok {
		if name = strings.TrimSpace(name); len([]rune(name)) > 100 {
			verr.Add("name", "must be at most 100 characters")
		} else {
			b.Name = name
		}
	}
	if in.Secret.Set && in.WebhookID.Set && !in.Secret.Null && !in.WebhookID.Null {
		verr.Add("webhook_id", "give either secret or webhook_id, not both")
		return verr
	}
	if sec, ok := in.Secret.get(verr, "secret"); in.Secret.Null {
		b.Secret = ""
	} else if ok {
		if msg := checkSecret(sec); msg != "" {
			verr.Add("secret", "%s", msg)
		} else {
			b.Secret, b.WebhookID = sec, ""
		}
	}
	if id, ok := in.WebhookID.get(verr, "webhook_id"); in.WebhookID.Null {
		b.WebhookID = ""
	} else if ok {
		if _, err := h.bins.GetWebhook(c.Request.Context(), id); errors.Is(err, models.ErrNotFound) || id == "" {
			verr.Add("webhook_id", "no webhook has this id")
		} else if err != nil {
			return err
		} else {
			b.WebhookID, b.Secret = id, ""
		}
	}
	// Unknown keys in response are reported with it, and its other fields still apply.
	if r, _ := in.Response.get(verr, "response"); in.Response.Set {
		applyBinResponse(&r, b, verr)
	}
	return verr.OrNil()
}

func applyBinResponse(r *BinResponseInput, b *models.Bin, verr *models.ValidationError) {
	if status, ok := r.Status.get(verr, "response.status"); ok {
		b.ResponseStatus = status
	}
	if body, ok := r.Body.get(verr, "response.body"); ok {
		if len(body) > inspector.MaxResponseBody {
			verr.Add("response.body", "must be at most %d bytes", inspector.MaxResponseBody)
		} else {
			b.ResponseBody = body
		}
	}
	if ct, ok := r.ContentType.get(verr, "response.content_type"); ok {
		ct = strings.TrimSpace(ct)
		if _, _, err := mime.ParseMediaType(ct); err != nil || len(ct) > 200 {
			verr.Add("response.content_type", "must be a media type such as application/json")
		} else {
			b.ResponseContentType = ct
		}
	}
	if delay, ok := r.DelayMS.get(verr, "response.delay_ms"); ok {
		b.ResponseDelayMS = delay
	}
}

// loadBin reads the :id bin or answers 404.
func (h *inspectorAPI) loadBin(c *gin.Context) (*models.Bin, bool) {
	b, err := h.bins.GetBin(c.Request.Context(), c.Param("id"))
	if err != nil {
		storeProblem(c, err)
		return nil, false
	}
	return b, true
}

// listBins lists bins, newest first.
//
//	@Summary	List inspector bins
//	@Tags		inspector
//	@Produce	json
//	@Security	BearerAuth
//	@Param		limit	query		int		false	"page size (1-200)"	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	List[Bin]
//	@Failure	400		{object}	Problem
//	@Failure	401		{object}	Problem
//	@Router		/api/v1/inspector/bins [get]
func (h *inspectorAPI) listBins(c *gin.Context) {
	p, ok := page(c)
	if !ok {
		return
	}
	list, next, err := h.bins.ListBins(c.Request.Context(), p)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[Bin]{Data: make([]Bin, 0, len(list)), NextCursor: cursor(next)}
	for _, b := range list {
		out.Data = append(out.Data, h.binOut(b))
	}
	c.JSON(http.StatusOK, out)
}

// createBin creates a bin.
//
//	@Summary		Create an inspector bin
//	@Description	A bin captures every request sent to its url (any method, any sub-path) and verifies it with its secret, or with the current secret of the webhook it is linked to. The default response is 200 {"ok":true}.
//	@Tags			inspector
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			body	body		BinInput	false	"the bin"
//	@Success		201		{object}	Bin
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@Router			/api/v1/inspector/bins [post]
func (h *inspectorAPI) createBin(c *gin.Context) {
	in, ok := readInput[BinInput](c, true)
	if !ok {
		return
	}
	b := &models.Bin{ResponseStatus: http.StatusOK, ResponseBody: `{"ok":true}`, ResponseContentType: "application/json"}
	if err := h.applyBinInput(c, &in, b); err != nil {
		storeProblem(c, err)
		return
	}
	if err := h.bins.CreateBin(c.Request.Context(), b); err != nil {
		storeProblem(c, err)
		return
	}
	c.Header("Location", "/api/v1/inspector/bins/"+b.ID)
	c.JSON(http.StatusCreated, h.binOut(b))
}

// getBin reads a bin.
//
//	@Summary	Get an inspector bin
//	@Tags		inspector
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"bin id"
//	@Success	200	{object}	Bin
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/inspector/bins/{id} [get]
func (h *inspectorAPI) getBin(c *gin.Context) {
	b, ok := h.loadBin(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, h.binOut(b))
}

// updateBin changes the given fields.
//
//	@Summary		Update an inspector bin
//	@Description	Partial update: only the fields sent change, also inside response. Setting secret clears webhook_id and the reverse; null removes either.
//	@Tags			inspector
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string		true	"bin id"
//	@Param			body	body		BinInput	true	"fields to change"
//	@Success		200		{object}	Bin
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@Router			/api/v1/inspector/bins/{id} [patch]
func (h *inspectorAPI) updateBin(c *gin.Context) {
	b, ok := h.loadBin(c)
	if !ok {
		return
	}
	in, ok := readInput[BinInput](c, false)
	if !ok {
		return
	}
	if err := h.applyBinInput(c, &in, b); err != nil {
		storeProblem(c, err)
		return
	}
	if err := h.bins.UpdateBin(c.Request.Context(), b); err != nil {
		storeProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, h.binOut(b))
}

// deleteBin deletes a bin with its captures and disconnects its live clients.
//
//	@Summary	Delete an inspector bin
//	@Tags		inspector
//	@Security	BearerAuth
//	@Param		id	path	string	true	"bin id"
//	@Success	204
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/inspector/bins/{id} [delete]
func (h *inspectorAPI) deleteBin(c *gin.Context) {
	id := c.Param("id")
	if err := h.bins.DeleteBin(c.Request.Context(), id); err != nil {
		storeProblem(c, err)
		return
	}
	h.insp.Forget(id)
	c.Status(http.StatusNoContent)
}

// listCaptures lists a bin's captured requests, newest first.
//
//	@Summary		List captured requests
//	@Description	The last 500 requests the bin received, newest first, as summaries: verdicts, size and the first 1 KiB of the body (base64 when not valid UTF-8; truncated says whether there is more), no headers. GET …/requests/{rid} reads one whole.
//	@Tags			inspector
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string	true	"bin id"
//	@Param			limit	query		int		false	"page size (1-200)"	default(50)
//	@Param			cursor	query		string	false	"next_cursor of the previous page"
//	@Success		200		{object}	List[inspector.CaptureSummary]
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Router			/api/v1/inspector/bins/{id}/requests [get]
func (h *inspectorAPI) listCaptures(c *gin.Context) {
	b, ok := h.loadBin(c)
	if !ok {
		return
	}
	p, ok := page(c)
	if !ok {
		return
	}
	list, next, err := h.bins.ListCaptures(c.Request.Context(), b.ID, p, inspector.PreviewBytes, inspector.KeepPerBin)
	if err != nil {
		storeProblem(c, err)
		return
	}
	out := List[inspector.CaptureSummary]{Data: make([]inspector.CaptureSummary, 0, len(list)), NextCursor: cursor(next)}
	for _, cp := range list {
		out.Data = append(out.Data, inspector.SummaryOut(cp))
	}
	c.JSON(http.StatusOK, out)
}

// getCapture reads one captured request.
//
//	@Summary	Get a captured request
//	@Tags		inspector
//	@Produce	json
//	@Security	BearerAuth
//	@Param		id	path		string	true	"bin id"
//	@Param		rid	path		string	true	"capture id"
//	@Success	200	{object}	inspector.Capture
//	@Failure	401	{object}	Problem
//	@Failure	404	{object}	Problem
//	@Router		/api/v1/inspector/bins/{id}/requests/{rid} [get]
func (h *inspectorAPI) getCapture(c *gin.Context) {
	cp, err := h.bins.GetCapture(c.Request.Context(), c.Param("id"), c.Param("rid"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	c.JSON(http.StatusOK, inspector.CaptureOut(cp))
}

// forwardCapture sends a captured request once to another URL.
//
//	@Summary		Forward a captured request
//	@Description	Sends the captured request once to url: same method, same body bytes, same headers except hop-by-hop ones. The SSRF guard applies as for deliveries (loopback and private targets need --allow-private-targets); redirects are not followed. A failing target is not an API error: look at status and error.
//	@Tags			inspector
//	@Accept			json
//	@Produce		json
//	@Security		BearerAuth
//	@Param			id		path		string			true	"bin id"
//	@Param			rid		path		string			true	"capture id"
//	@Param			body	body		ForwardInput	true	"target"
//	@Success		200		{object}	inspector.ForwardResult
//	@Failure		400		{object}	Problem
//	@Failure		401		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		409		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		415		{object}	Problem
//	@Failure		422		{object}	Problem
//	@x-problem-409		"this request was rejected (body larger than 1048576 bytes: answered 413) and its body was not kept, so it cannot be forwarded"
//	@Router			/api/v1/inspector/bins/{id}/requests/{rid}/forward [post]
func (h *inspectorAPI) forwardCapture(c *gin.Context) {
	cp, err := h.bins.GetCapture(c.Request.Context(), c.Param("id"), c.Param("rid"))
	if err != nil {
		storeProblem(c, err)
		return
	}
	in, ok := readInput[ForwardInput](c, false)
	if !ok {
		return
	}
	target := strings.TrimSpace(in.URL)
	if msg := inspector.CheckForwardURL(target); msg != "" {
		invalid(c, "url", "%s", msg)
		return
	}
	if cp.Rejected != "" {
		problem(c, http.StatusConflict, "this request was rejected ("+cp.Rejected+") and its body was not kept, so it cannot be forwarded")
		return
	}
	c.JSON(http.StatusOK, h.insp.Forward(c.Request.Context(), cp, target))
}

// binSocket streams the bin's captures live.
//
//	@Summary		Live stream of captured requests
//	@Description	WebSocket. Each capture is sent as {"type":"request","data":<Capture>} as soon as it is stored. Browsers authenticate with the session cookie and must come from this server's origin; scripts use a bearer token. The server pings every 20 s; a client that falls behind is disconnected.
//	@Tags			inspector
//	@Security		BearerAuth
//	@Param			id	path		string	true	"bin id"
//	@Success		101	{object}	inspector.Message	"switching protocols; messages have this shape"
//	@Failure		400	{object}	Problem
//	@Failure		401	{object}	Problem
//	@Failure		403	{object}	Problem
//	@Failure		404	{object}	Problem
//	@Router			/api/v1/inspector/bins/{id}/ws [get]
func (h *inspectorAPI) binSocket(c *gin.Context) {
	b, ok := h.loadBin(c)
	if !ok {
		return
	}
	cr := RequestCredential(c)
	h.insp.Hub().ServeWS(c.Writer, c.Request, b.ID, inspector.Credential{Tags: cr.Tags, Valid: cr.Valid}, socketRefused(c))
}

// receive is the public receiver: it captures the request and answers with the bin's
// configured response.
//
//	@Summary		Inspector receiver
//	@Description	Public, no authentication. Captures method, path, query, headers and body (up to 1 MiB, byte for byte), verifies signatures and payload, pushes the capture to the bin's live stream, then answers with the bin's configured response after its delay.
//	@Tags			receiver
//	@Accept			*/*
//	@Produce		*/*
//	@Param			id		path		string	true	"bin id"
//	@Param			path	path		string	false	"any sub-path"
//	@Success		200		{file}		file	"the bin's configured response; by default 200 with the JSON body ok: true"
//	@Response		default	{file}		file	"the bin's configured response, when its status is not 200"
//	@Failure		400		{object}	Problem
//	@Failure		404		{object}	Problem
//	@Failure		413		{object}	Problem
//	@Failure		429		{object}	Problem
//	@x-problem-400		"could not read the body"
//	@x-problem-404		"no inspector bin has this id"
//	@x-problem-413		"the body is larger than 1048576 bytes; the request was recorded as rejected"
//	@x-problem-429		"this bin accepts at most 50 requests per second"
//	@x-response-examples	{"200": "{\"ok\":true}", "default": "{\"error\":\"temporarily unavailable\"}"}
//	@Router			/inspect/{id} [get]
//	@Router			/inspect/{id} [post]
//	@Router			/inspect/{id} [put]
//	@Router			/inspect/{id} [patch]
//	@Router			/inspect/{id} [delete]
//	@Router			/inspect/{id} [head]
//	@Router			/inspect/{id} [options]
//	@Router			/inspect/{id}/{path} [get]
//	@Router			/inspect/{id}/{path} [post]
//	@Router			/inspect/{id}/{path} [put]
//	@Router			/inspect/{id}/{path} [patch]
//	@Router			/inspect/{id}/{path} [delete]
//	@Router			/inspect/{id}/{path} [head]
//	@Router			/inspect/{id}/{path} [options]
func (h *inspectorAPI) receive(c *gin.Context) {
	b, err := h.insp.Receive(c.Request, c.Param("id"))
	switch {
	case errors.Is(err, models.ErrNotFound):
		problem(c, http.StatusNotFound, "no inspector bin has this id")
		return
	case errors.Is(err, inspector.ErrRateLimited):
		h.insp.HoldRefused(c.Request)
		c.Header("Retry-After", "1")
		problem(c, http.StatusTooManyRequests, "this bin accepts at most "+h.rateText()+" requests per second")
		return
	case errors.Is(err, inspector.ErrYielded):
		h.insp.HoldRefused(c.Request)
		c.Header("Retry-After", "1")
		problem(c, http.StatusTooManyRequests, "webhooks are being delivered: meanwhile the inspector's bins together accept at most "+
			strconv.FormatFloat(h.insp.BusyRate(), 'f', -1, 64)+" requests per second")
		return
	case errors.Is(err, inspector.ErrTooLarge):
		c.Header("Connection", "close") // the rest of the body is not read
		problem(c, http.StatusRequestEntityTooLarge, "the body is larger than "+strconv.Itoa(inspector.MaxBodyBytes)+" bytes; the request was recorded as rejected")
		return
	case errors.Is(err, inspector.ErrReadBody):
		problem(c, http.StatusBadRequest, "could not read the body")
		return
	case err != nil:
		storeProblem(c, err)
		return
	}
	inspector.Respond(c.Request.Context(), c.Writer, b)
}

func (h *inspectorAPI) rateText() string {
	return strconv.FormatFloat(h.insp.Rate(), 'f', -1, 64)
}
