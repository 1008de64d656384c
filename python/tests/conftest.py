"""pytest configuration: the package under test is the installed `strata`."""
