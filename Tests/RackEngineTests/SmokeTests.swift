import Testing
@testable import RackEngine

@Test func versionIsSet() { #expect(!RackEngineVersion.string.isEmpty) }
