# The admin showed "Dec. 3, 2026, 6:33 p.m." with no zone, next to a user whose time zone is
# another (and a due time labelled as the owner's wall clock): every time it shows is UTC
# (TIME_ZONE), and now says so. `e` is the zone's name.
DATETIME_FORMAT = "N j, Y, P e"
SHORT_DATETIME_FORMAT = "m/d/Y P e"
