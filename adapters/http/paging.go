package http

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
)

// Paging kinds. page and offset are computed by the adapter; cursor and
// next_link come from each response:
//
//   - cursor: the response holds the next page's cursor at CursorPath,
//     sent back in CursorParam; none (missing, null or "") ends the listing.
//   - next_link: the response holds the next page's URL at NextPath, or,
//     without NextPath, in a Link header's rel="next"; none ends the
//     listing. The link must stay on base_url's scheme and host: the
//     adapter never sends its credentials elsewhere.
//
// A cursor or link seen twice in one listing ends it with an error rather
// than loop.
const (
	pagingPage     = "page"
	pagingOffset   = "offset"
	pagingCursor   = "cursor"
	pagingNextLink = "next_link"
)

// checkPaging validates the paging keys of the collection at key.
func (col *Collection) checkPaging(key string) error {
	switch col.Paging {
	case pagingPage:
		if col.PageParam == "" || col.LimitParam == "" {
			return errors.WithHint(keyErr(key+".paging", "page paging needs page_param and limit_param"), "e.g. page_param: _page, limit_param: _limit")
		}
	case pagingOffset:
		if col.OffsetParam == "" || col.LimitParam == "" {
			return errors.WithHint(keyErr(key+".paging", "offset paging needs offset_param and limit_param"), "e.g. offset_param: offset, limit_param: limit")
		}
	case pagingCursor:
		if col.CursorParam == "" || col.CursorPath == "" {
			return errors.WithHint(keyErr(key+".paging", "cursor paging needs cursor_param and cursor_path"),
				"e.g. cursor_param: cursor (the query parameter), cursor_path: meta.next_cursor (where the response holds it)")
		}
	case pagingNextLink:
		// NextPath is optional (the Link header); PageParam and LimitParam
		// only shape the first request.
	default:
		return errors.WithHint(keyErr(key+".paging", "%q", col.Paging), "page, offset, cursor or next_link")
	}
	if col.Paging != pagingCursor && (col.CursorParam != "" || col.CursorPath != "") {
		return errors.WithHint(keyErr(key+".cursor_param", "set, and paging is %s", col.Paging), "cursor_param and cursor_path belong to paging: cursor")
	}
	if col.Paging != pagingNextLink && col.NextPath != "" {
		return errors.WithHint(keyErr(key+".next_path", "set, and paging is %s", col.Paging), "next_path belongs to paging: next_link")
	}
	return nil
}

// pager reads one listing page by page.
type pager struct {
	a         *Adapter
	col       *Collection
	byUpdated bool
	since     int64
	url       string // the next page's URL; "" after the last page
	page      int    // page and offset paging: the next page's number
	followed  map[string]bool
}

// pages starts a listing of col's records: updated at or after since in
// capture order when byUpdated, else every record by ID.
func (a *Adapter) pages(col *Collection, byUpdated bool, since int64) *pager {
	p := &pager{a: a, col: col, byUpdated: byUpdated, since: since, page: 1, followed: map[string]bool{}}
	p.url = a.listURL(col, byUpdated, since, 1)
	return p
}

// more reports whether another page is to be read.
func (p *pager) more() bool { return p.url != "" }

// next reads the next page.
func (p *pager) next(ctx context.Context) ([]record, error) {
	u := p.url
	recs, n, resp, err := p.a.list(ctx, p.col, u)
	if err != nil {
		return nil, err
	}
	p.url = ""
	switch p.col.Paging {
	case pagingPage, pagingOffset:
		if n >= p.col.PageSize {
			p.page++
			p.url = p.a.listURL(p.col, p.byUpdated, p.since, p.page)
		}
	case pagingCursor:
		cur, err := jsonString(resp.body, p.col.CursorPath)
		if err != nil {
			return nil, errors.WithHint(errors.Wrapf(err, "http adapter: GET %s: the next cursor", u), "check the collection's cursor_path")
		}
		if cur != "" {
			p.url = p.a.listURL(p.col, p.byUpdated, p.since, 1) + "&" + url.Values{p.col.CursorParam: {cur}}.Encode()
		}
	case pagingNextLink:
		link := ""
		if p.col.NextPath != "" {
			if link, err = jsonString(resp.body, p.col.NextPath); err != nil {
				return nil, errors.WithHint(errors.Wrapf(err, "http adapter: GET %s: the next link", u), "check the collection's next_path")
			}
		} else {
			link = linkNext(resp.header.Values("Link"))
		}
		if link != "" {
			if p.url, err = p.a.sameOrigin(u, link); err != nil {
				return nil, err
			}
		}
	}
	if p.url != "" {
		if p.followed[p.url] {
			return nil, errors.WithHint(errors.Newf("http adapter: GET %s: the next page is one already read (%s)", u, p.url),
				"the API repeats a cursor or link; check the collection's paging keys")
		}
		p.followed[p.url] = true
	}
	return recs, nil
}

// sameOrigin resolves a next link against the URL of the page that gave
// it and refuses one on another scheme or host than base_url's.
func (a *Adapter) sameOrigin(from, link string) (string, error) {
	base, err := url.Parse(a.cfg.BaseURL)
	if err != nil {
		return "", errors.Wrap(err, "http adapter: base_url")
	}
	cur, err := url.Parse(from)
	if err != nil {
		return "", errors.Wrapf(err, "http adapter: %s", from)
	}
	next, err := url.Parse(link)
	if err != nil {
		return "", errors.WithHint(errors.Wrapf(err, "http adapter: GET %s: next link %q", from, link), "the API's next link is not a URL")
	}
	next = cur.ResolveReference(next)
	if !strings.EqualFold(next.Scheme, base.Scheme) || !strings.EqualFold(next.Host, base.Host) {
		return "", errors.WithHint(errors.Newf("http adapter: GET %s: next link %s leaves %s://%s: not followed", from, next.Redacted(), base.Scheme, base.Host),
			"the adapter follows next links only on base_url's scheme and host, so that its credentials go nowhere else; "+
				"set base_url to the host the API links to, or use another paging kind")
	}
	return next.String(), nil
}

// checkRedirect lets the HTTP client follow a redirect only on base_url's
// scheme and host, as sameOrigin does for next links: the standard client
// drops Authorization on a redirect to another host, but not a header of
// another name.
func (a *Adapter) checkRedirect(req *nethttp.Request, via []*nethttp.Request) error {
	if len(via) >= 10 {
		return errors.New("http adapter: stopped after 10 redirects")
	}
	base, err := url.Parse(a.cfg.BaseURL)
	if err != nil {
		return errors.Wrap(err, "http adapter: base_url")
	}
	if !strings.EqualFold(req.URL.Scheme, base.Scheme) || !strings.EqualFold(req.URL.Host, base.Host) {
		return errors.WithHint(errors.Newf("http adapter: redirect to %s leaves %s://%s: not followed", req.URL.Redacted(), base.Scheme, base.Host),
			"the adapter follows redirects only on base_url's scheme and host, so that its credentials go nowhere else; set base_url to where the API lives")
	}
	return nil
}

// linkNext returns the target of rel="next" in Link header values (RFC
// 8288), "" when there is none.
func linkNext(values []string) string {
	for _, v := range values {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			v = v[end+1:]
			params := v
			if i := strings.Index(v, ",<"); i >= 0 {
				params, v = v[:i], v[i:]
			} else if i := strings.Index(v, ", <"); i >= 0 {
				params, v = v[:i], v[i:]
			} else {
				v = ""
			}
			for _, prm := range strings.Split(params, ";") {
				name, val, ok := strings.Cut(strings.TrimSpace(prm), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// jsonString reads the value at a dotted path of a JSON object: a string,
// or a number as its text; "" when the path is missing or null.
func jsonString(body []byte, path string) (string, error) {
	raw := json.RawMessage(body)
	for _, part := range strings.Split(path, ".") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", errors.Newf("want an object holding %q: %s", path, clip(body))
		}
		var ok bool
		if raw, ok = obj[part]; !ok {
			return "", nil
		}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", errors.Newf("at %q: %s", path, clip(raw))
	}
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case float64:
		return strings.TrimSpace(string(raw)), nil
	}
	return "", errors.Newf("at %q: want a string, got %s", path, clip(raw))
}

// listURL returns the URL of a page of col's records: updated at or after
// since in capture order when byUpdated, else every record by ID. page
// counts pages from 1 (page and offset paging, and the first page of
// next_link paging); cursor paging adds the cursor to it.
func (a *Adapter) listURL(col *Collection, byUpdated bool, since int64, page int) string {
	q := url.Values{}
	for k, v := range col.Query {
		q.Set(k, v)
	}
	if byUpdated {
		q.Set(col.SinceParam, strings.ReplaceAll(col.SinceValue, "{since}", col.formatUpdated(since)))
		if col.SortParam != "" {
			q.Set(col.SortParam, col.SortValue)
		}
		if col.OrderParam != "" {
			q.Set(col.OrderParam, col.OrderValue)
		}
	} else {
		if col.SortParam != "" {
			q.Set(col.SortParam, col.ID)
		}
		if col.OrderParam != "" {
			q.Set(col.OrderParam, "asc")
		}
	}
	switch col.Paging {
	case pagingPage:
		q.Set(col.PageParam, strconv.Itoa(page))
	case pagingOffset:
		q.Set(col.OffsetParam, strconv.Itoa((page-1)*col.PageSize))
	case pagingNextLink:
		if col.PageParam != "" {
			q.Set(col.PageParam, strconv.Itoa(page))
		}
	}
	if col.LimitParam != "" {
		q.Set(col.LimitParam, strconv.Itoa(col.PageSize))
	}
	return a.cfg.BaseURL + col.Path + "?" + q.Encode()
}

// list fetches one page and decodes it; records that cannot be decoded
// are logged and counted, never returned. n counts the page's records,
// those skipped included.
func (a *Adapter) list(ctx context.Context, col *Collection, u string) (recs []record, n int, r response, err error) {
	r, err = a.c.do(ctx, nethttp.MethodGet, u, nil)
	if err != nil {
		return nil, 0, r, err
	}
	recs, bad, err := col.decodeList(r.body)
	if err != nil {
		return nil, 0, r, errors.WithHint(errors.Wrapf(err, "http adapter: GET %s", u), "check the collection's records and paging keys")
	}
	for _, e := range bad {
		a.skipped.Add(1)
		a.skippedBy[col.name].Add(1)
		a.log.Warn("http adapter: record skipped", "collection", col.name, "err", e)
	}
	return recs, len(recs) + len(bad), r, nil
}
