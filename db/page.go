package db

import "strconv"

// PageParams selects one page of a keyset-paged list. The list is ordered by
// id; AfterID and BeforeID are exclusive bounds taken from cursors.
type PageParams struct {
	// Limit is the page size; the caller has clamped it already.
	Limit int
	// Backward pages from the end (Relay's last/before) instead of the start.
	Backward bool
	AfterID  *int64
	BeforeID *int64
}

// PageResult tells whether there are rows beyond the page on either side.
type PageResult struct {
	HasNext     bool
	HasPrevious bool
}

// keysetClause returns the WHERE fragment, ORDER BY and LIMIT of a page over
// the column idCol, numbering its arguments from next.
func (p *PageParams) keysetClause(idCol string, args []any) (string, []any) {
	where := ""
	if p.AfterID != nil {
		args = append(args, *p.AfterID)
		where += " AND " + idCol + " > $" + strconv.Itoa(len(args))
	}
	if p.BeforeID != nil {
		args = append(args, *p.BeforeID)
		where += " AND " + idCol + " < $" + strconv.Itoa(len(args))
	}
	dir := "ASC"
	if p.Backward {
		dir = "DESC"
	}
	args = append(args, p.Limit+1)
	return where + " ORDER BY " + idCol + " " + dir + " LIMIT $" + strconv.Itoa(len(args)), args
}

// finish trims the extra row fetched to detect more, puts a backward page
// back in ascending order and reports what lies beyond.
func finish[T any](p *PageParams, rows []T) ([]T, PageResult) {
	more := len(rows) > p.Limit
	if more {
		rows = rows[:p.Limit]
	}
	var res PageResult
	if p.Backward {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
		res.HasPrevious = more
		res.HasNext = p.BeforeID != nil
	} else {
		res.HasNext = more
		res.HasPrevious = p.AfterID != nil
	}
	return rows, res
}
