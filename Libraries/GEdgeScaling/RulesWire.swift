import GEdgeCore

extension ScalingRules {
    /// Reads autoscaling/v2 `HPAScalingRules` (`stabilizationWindowSeconds`, `policies`,
    /// `selectPolicy`) over `base`: what is not given stays as in `base`.
    public static func decode(_ r: FieldReader, base: ScalingRules) throws(MessageDecodingError) -> ScalingRules {
        var out = base
        if let w = try r.optionalInt("stabilizationWindowSeconds") {
            guard (0...3600).contains(w) else { throw MessageDecodingError(.invalidValue, field: r.childPath("stabilizationWindowSeconds"), reason: "0 to 3600 seconds") }
            out.stabilizationWindowSeconds = w
        }
        if let s = try r.optionalString("selectPolicy") {
            guard let sel = Select(rawValue: s) else { throw MessageDecodingError(.invalidValue, field: r.childPath("selectPolicy"), reason: "Max, Min or Disabled") }
            out.selectPolicy = sel
        }
        if let list = try r.optionalList("policies") { out.policies = try decodePolicies(list, path: r.childPath("policies")) }
        return out
    }

    /// A `policies` list: `{type: Pods|Percent, value, periodSeconds}` each.
    public static func decodePolicies(_ list: [JSONValue], path: String) throws(MessageDecodingError) -> [Policy] {
        var out: [Policy] = []
        for (i, item) in list.enumerated() {
            let pr = try FieldReader(item, path: "\(path)[\(i)]")
            try pr.rejectUnknown(allowed: ["type", "value", "periodSeconds"])
            let t = try pr.string("type")
            guard let type = PolicyType(rawValue: t) else { throw MessageDecodingError(.invalidValue, field: pr.childPath("type"), reason: "Pods or Percent") }
            guard let v = try pr.optionalInt("value"), v > 0 else { throw MessageDecodingError(.invalidValue, field: pr.childPath("value"), reason: "a whole number above 0") }
            guard let period = try pr.optionalInt("periodSeconds"), (1...1800).contains(period) else {
                throw MessageDecodingError(.invalidValue, field: pr.childPath("periodSeconds"), reason: "1 to 1800 seconds")
            }
            out.append(Policy(type: type, value: v, periodSeconds: period))
        }
        return out
    }

    /// The wire form `decode` reads.
    public var json: JSONValue {
        .object([
            "stabilizationWindowSeconds": .number(Double(stabilizationWindowSeconds)), "selectPolicy": .string(selectPolicy.rawValue),
            "policies": .array(policies.map { .object(["type": .string($0.type.rawValue), "value": .number(Double($0.value)), "periodSeconds": .number(Double($0.periodSeconds))]) }),
        ])
    }
}
