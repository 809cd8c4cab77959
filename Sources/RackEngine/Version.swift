public enum RackEngineVersion { public static let string = "0.1.0" }
