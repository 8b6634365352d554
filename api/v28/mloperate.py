"""V28 chapter 4 (`mloperate.php`): filled in once the contacts services are merged."""
