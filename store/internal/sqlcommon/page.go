package sqlcommon

// pageOf trims a list fetched with limit+1 rows and returns the next cursor when more exist.
func pageOf[T any](list []T, limit int, id func(T) string) ([]T, string) {
	if len(list) > limit {
		list = list[:limit]
		return list, id(list[len(list)-1])
	}
	return list, ""
}
