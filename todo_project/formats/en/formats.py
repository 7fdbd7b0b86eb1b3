# The admin showed "Dec. 3, 2026, 6:33 p.m." with no zone, next to a user whose time zone is
# another (and a due time labelled as the owner's wall clock): every time it shows is UTC
# (TIME_ZONE), and now says so. `e` is the zone's name.
DATETIME_FORMAT = "N j, Y, P e"
SHORT_DATETIME_FORMAT = "m/d/Y P e"
# Dates and times typed in the admin are read as its widgets write them (ISO 8601) and no other
# way: Django's en-us inputs also took 12/05/2026 as 5 December, which an agent outside the US
# who meant 12 May saved without a word.
DATE_INPUT_FORMATS = ["%Y-%m-%d"]
DATETIME_INPUT_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M"]
