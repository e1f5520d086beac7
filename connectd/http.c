/* http.c: (stub) */
#include "connectd.h"
