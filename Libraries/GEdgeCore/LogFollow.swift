/// Following a log by asking for its tail again and again (gedgectl logs -f, the console):
/// which lines of the latest tail come after those already shown.
public enum LogFollow {
    /// The lines of `latest` after what `shown` ends with: the longest suffix of `shown` that
    /// `latest` holds as a run (the latest such run), and what follows it; everything when
    /// none is found (more came than one tail holds).
    public static func newLines(after shown: [String], in latest: [String]) -> [String] {
        guard !shown.isEmpty else { return latest }
        var k = min(shown.count, latest.count)
        while k > 0 {
            let tail = Array(shown.suffix(k))
            for start in stride(from: latest.count - k, through: 0, by: -1) where Array(latest[start..<(start + k)]) == tail {
                return Array(latest[(start + k)...])
            }
            k -= 1
        }
        return latest
    }
}
