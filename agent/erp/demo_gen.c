/*
 * Generator of the demo ERP file (demo.h): a SQLite database shaped like a
 * desktop ERP, deterministic from (rows, seed).
 *
 * Every row is a pure function of (seed, company, table, row number): each
 * row seeds its own small PRNG (splitmix64), so a purchase order line can
 * recompute the item it orders without keeping the items in memory, and a
 * change to one table's generator does not shift the others. Nothing reads
 * the clock: times are offsets from 2023-01-01 00:00 local time.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "demo.h"
#include "err.h"
#include "plat.h"
#include "util.h"

#define DAY_MS  86400000LL
#define HOUR_MS 3600000LL
/* 2023-01-01 00:00:00.000 on the ERP's local wall clock, as ms since 1970. */
#define BASE_MS 1672531200000LL
/* Rows are created within this many days of BASE_MS; batch imports come after. */
#define CREATE_DAYS 600
#define BATCH_DAY   700
#define BATCH_DAYS  30
/* Batch imports per (company, list): many rows share one of these stamps. */
#define NBATCH 16

#define TS_LEN       24 /* "YYYY-MM-DD HH:MM:SS.mmm" + NUL */
#define DATE_LEN     11 /* "YYYY-MM-DD" + NUL */
#define MAX_PO_LINES 5
#define KEY_LEN      24 /* vendor, item, PO and receipt numbers, with room for any int64 */
#define NUM_LEN      24 /* a line number as text */

/* PRNG streams, one per kind of row. */
enum stream {
	ST_COMPANY = 1,
	ST_VENDOR,
	ST_GL,
	ST_ITEM,
	ST_TAX,
	ST_UNIT,
	ST_WAREHOUSE,
	ST_DIVISION,
	ST_BANK,
	ST_PO,
	ST_RECEIPT,
	ST_BATCH = 0x80, /* | the stream of the list whose batch stamps these are */
};

/* Prepared inserts, one per table. */
enum ins {
	I_INFO,
	I_COMPANY,
	I_VENDOR,
	I_GL,
	I_ITEM,
	I_TAX,
	I_UNIT,
	I_WAREHOUSE,
	I_DIVISION,
	I_BANK,
	I_PO,
	I_PO_LINE,
	I_RECEIPT,
	I_RECEIPT_LINE,
	I__COUNT
};

static const char *const insert_sql[I__COUNT] = {
    [I_INFO] = "INSERT INTO erp_info VALUES(?,?)",
    [I_COMPANY] = "INSERT INTO companies VALUES(?,?,?,?,?)",
    [I_VENDOR] = "INSERT INTO vendors VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [I_GL] = "INSERT INTO gl_accounts VALUES(?,?,?,?,?,?,?)",
    [I_ITEM] = "INSERT INTO items VALUES(?,?,?,?,?,?,?,?,?)",
    [I_TAX] = "INSERT INTO tax_codes VALUES(?,?,?,?,?,?,?)",
    [I_UNIT] = "INSERT INTO units VALUES(?,?,?,?,?,?)",
    [I_WAREHOUSE] = "INSERT INTO warehouses VALUES(?,?,?,?,?,?,?,?,?,?)",
    [I_DIVISION] = "INSERT INTO divisions VALUES(?,?,?,?,?,?)",
    [I_BANK] = "INSERT INTO bank_accounts VALUES(?,?,?,?,?,?,?,?,?,?)",
    [I_PO] = "INSERT INTO po_headers VALUES(?,?,?,?,?,?,?,?,?,?,?)",
    [I_PO_LINE] = "INSERT INTO po_lines VALUES(?,?,?,?,?,?,?,?,?,?)",
    [I_RECEIPT] = "INSERT INTO receipts VALUES(?,?,?,?,?,?,?)",
    [I_RECEIPT_LINE] = "INSERT INTO receipt_lines VALUES(?,?,?,?,?,?,?)",
};

static const char schema_sql[] =
    "CREATE TABLE erp_info(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE companies(company_code TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " currency TEXT NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL);\n"
    "CREATE TABLE vendors(company_code TEXT NOT NULL, vendor_no TEXT NOT NULL,"
    " name TEXT NOT NULL, address1 TEXT, address2 TEXT, city TEXT, state TEXT, zip TEXT,"
    " phone TEXT, email TEXT, tax_id TEXT, terms_code TEXT, currency TEXT NOT NULL,"
    " separate_check INTEGER NOT NULL, -- 1: pay by separate check\n"
    " status TEXT NOT NULL, -- 'A' active, 'I' inactive\n"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, vendor_no));\n"
    "CREATE TABLE gl_accounts(company_code TEXT NOT NULL, account_no TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " account_type TEXT NOT NULL, -- A asset, L liability, Q equity, I income, E expense\n"
    " status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, account_no));\n"
    "CREATE TABLE items(company_code TEXT NOT NULL, item_no TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " item_type TEXT NOT NULL, -- I inventory, N non-inventory, S service\n"
    " unit_code TEXT NOT NULL, standard_cost TEXT NOT NULL, status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, item_no));\n"
    "CREATE TABLE tax_codes(company_code TEXT NOT NULL, tax_code TEXT NOT NULL,"
    " description TEXT NOT NULL, rate TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, tax_code));\n"
    "CREATE TABLE units(company_code TEXT NOT NULL, unit_code TEXT NOT NULL,"
    " description TEXT NOT NULL, status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, unit_code));\n"
    "CREATE TABLE warehouses(company_code TEXT NOT NULL, warehouse_code TEXT NOT NULL,"
    " name TEXT NOT NULL, address1 TEXT, city TEXT, state TEXT, zip TEXT,"
    " status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, warehouse_code));\n"
    "CREATE TABLE divisions(company_code TEXT NOT NULL, division_no TEXT NOT NULL,"
    " name TEXT NOT NULL, status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, division_no));\n"
    "CREATE TABLE bank_accounts(company_code TEXT NOT NULL, bank_code TEXT NOT NULL,"
    " name TEXT NOT NULL, account_number TEXT NOT NULL, routing_number TEXT NOT NULL,"
    " currency TEXT NOT NULL, gl_account TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, bank_code));\n"
    "CREATE TABLE po_headers(company_code TEXT NOT NULL, po_no TEXT NOT NULL,"
    " po_type TEXT NOT NULL, -- S standard, D drop ship, R repair, M master\n"
    " status TEXT NOT NULL, -- N new, O open, B backordered, C completed, X cancelled\n"
    " vendor_no TEXT NOT NULL, order_date TEXT NOT NULL, warehouse_code TEXT,"
    " division_no TEXT, total TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, po_no));\n"
    "CREATE TABLE po_lines(company_code TEXT NOT NULL, po_no TEXT NOT NULL,"
    " line_no INTEGER NOT NULL, item_no TEXT, description TEXT,"
    " qty_ordered TEXT NOT NULL, qty_received TEXT NOT NULL, unit_code TEXT,"
    " unit_cost TEXT NOT NULL, gl_account TEXT,"
    " PRIMARY KEY(company_code, po_no, line_no));\n"
    "CREATE TABLE receipts(company_code TEXT NOT NULL, receipt_no TEXT NOT NULL,"
    " po_no TEXT NOT NULL, vendor_no TEXT NOT NULL, receipt_date TEXT NOT NULL,"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " PRIMARY KEY(company_code, receipt_no));\n"
    "CREATE TABLE receipt_lines(company_code TEXT NOT NULL, receipt_no TEXT NOT NULL,"
    " line_no INTEGER NOT NULL, po_line_no INTEGER NOT NULL, item_no TEXT,"
    " qty_received TEXT NOT NULL, unit_cost TEXT NOT NULL,"
    " PRIMARY KEY(company_code, receipt_no, line_no));\n"
    "CREATE TABLE locks(company_code TEXT NOT NULL, user_name TEXT NOT NULL,"
    " reason TEXT NOT NULL, since TEXT NOT NULL);\n";

const char demo_ap_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS ap_invoices(invoice_id INTEGER PRIMARY KEY,"
    " company_code TEXT NOT NULL, vendor_no TEXT NOT NULL, invoice_no TEXT NOT NULL,"
    " invoice_date TEXT NOT NULL, due_date TEXT, currency TEXT NOT NULL, description TEXT,"
    " total TEXT NOT NULL, amount_paid TEXT NOT NULL,"
    " status TEXT NOT NULL, -- O open, P paid\n"
    " posted_at TEXT NOT NULL, UNIQUE(company_code, vendor_no, invoice_no));"
    "CREATE TABLE IF NOT EXISTS ap_invoice_lines(invoice_id INTEGER NOT NULL,"
    " line_no INTEGER NOT NULL, gl_account TEXT, item_no TEXT, description TEXT,"
    " quantity TEXT NOT NULL, unit_price TEXT NOT NULL, amount TEXT NOT NULL,"
    " tax_code TEXT, tax_amount TEXT NOT NULL, division_no TEXT, warehouse_code TEXT,"
    " po_no TEXT, po_line_no INTEGER, PRIMARY KEY(invoice_id, line_no));"
    "CREATE TABLE IF NOT EXISTS ap_payments(payment_id INTEGER PRIMARY KEY,"
    " company_code TEXT NOT NULL, payment_no TEXT NOT NULL, vendor_no TEXT NOT NULL,"
    " reference TEXT NOT NULL, payment_date TEXT NOT NULL, bank_code TEXT NOT NULL,"
    " method TEXT, amount TEXT NOT NULL,"
    " status TEXT NOT NULL, -- P posted, V void\n"
    " created_at TEXT NOT NULL, modified_at TEXT NOT NULL,"
    " UNIQUE(company_code, vendor_no, reference));"
    "CREATE UNIQUE INDEX IF NOT EXISTS ap_payments_no ON ap_payments(company_code, payment_no);"
    "CREATE TABLE IF NOT EXISTS ap_payment_lines(payment_id INTEGER NOT NULL,"
    " invoice_id INTEGER NOT NULL, amount TEXT NOT NULL, PRIMARY KEY(payment_id, invoice_id));";

/* Built after the inserts: the connector's (company, modified, key) paths. */
static const char index_sql[] =
    "CREATE INDEX vendors_modified ON vendors(company_code, modified_at, vendor_no);\n"
    "CREATE INDEX vendors_sepchk ON vendors(company_code, vendor_no)"
    " WHERE separate_check = 1;\n"
    "CREATE INDEX vendors_sepchk_modified ON vendors(company_code, modified_at, vendor_no)"
    " WHERE separate_check = 1;\n"
    "CREATE INDEX gl_accounts_modified ON gl_accounts(company_code, modified_at, account_no);\n"
    "CREATE INDEX items_modified ON items(company_code, modified_at, item_no);\n"
    "CREATE INDEX tax_codes_modified ON tax_codes(company_code, modified_at, tax_code);\n"
    "CREATE INDEX units_modified ON units(company_code, modified_at, unit_code);\n"
    "CREATE INDEX warehouses_modified ON warehouses(company_code, modified_at,"
    " warehouse_code);\n"
    "CREATE INDEX divisions_modified ON divisions(company_code, modified_at, division_no);\n"
    "CREATE INDEX bank_accounts_modified ON bank_accounts(company_code, modified_at,"
    " bank_code);\n"
    "CREATE INDEX po_headers_modified ON po_headers(company_code, modified_at, po_no);\n"
    "CREATE INDEX receipts_modified ON receipts(company_code, modified_at, receipt_no);\n"
    "CREATE INDEX locks_company ON locks(company_code);\n";

/* ---- words ------------------------------------------------------------ */

static const struct company_def {
	const char *code, *name, *currency;
} companies[] = {
    {"BLUE", "Blue Ridge Manufacturing Inc.", "USD"},
    {"HARBOR", "Harbor Foods LLC", "USD"},
};

static const char *const name_first[] = {
    "Allied",         "American",     "Apex",        "Atlas",       "Blue Sky",     "Cardinal",
    "Carolina",       "Centennial",   "Coastal",     "Continental", "Crown",        "Delta",
    "Eagle",          "Empire",       "Evergreen",   "Excel",       "First Choice", "Frontier",
    "Global",         "Golden State", "Great Lakes", "Heartland",   "Heritage",     "Highland",
    "Keystone",       "Liberty",      "Lone Star",   "Metro",       "Midwest",      "Mountain",
    "National",       "Northern",     "Pacific",     "Paramount",   "Piedmont",     "Pinnacle",
    "Premier",        "Prime",        "Quality",     "Reliable",    "Ridgeline",    "River City",
    "Rocky Mountain", "Southern",     "Sterling",    "Summit",      "Superior",     "Tri-County",
    "United",         "Valley",       "Western",     "Señor Frío",
};

static const char *const name_trade[] = {
    "Fastener",   "Packaging", "Industrial", "Electric",  "Steel",       "Paper",
    "Plastics",   "Chemical",  "Freight",    "Logistics", "Office",      "Janitorial",
    "Hydraulics", "Bearing",   "Tool",       "Welding",   "Safety",      "Lumber",
    "Machine",    "Pallet",    "Label",      "Container", "Equipment",   "Produce",
    "Dairy",      "Seafood",   "Meats",      "Spice",     "Ingredients", "Refrigeration",
    "Uniform",    "Printing",  "Instrument", "Pump",      "Valve",       "Wire & Cable",
    "Rubber",     "Abrasives", "Coatings",   "Controls",
};

static const char *const name_kind[] = {
    "Supply", "Supply Co.", "Distributors", "Products",   "Services",
    "Corp.",  "Inc.",       "LLC",          "Company",    "Group",
    "& Sons", "Wholesale",  "Solutions",    "Sales Inc.", "Systems",
};

static const char *const surnames[] = {
    "Anderson", "Baker",      "Brennan", "Castillo", "Chen",     "Davis",    "Dubois",
    "Fischer",  "Garcia",     "Hansen",  "Hoffman",  "Jackson",  "Kowalski", "Larsen",
    "Martinez", "McAllister", "Miller",  "Nguyen",   "O'Brien",  "O'Connor", "Patel",
    "Peterson", "Ramirez",    "Schmidt", "Sullivan", "Thompson", "Walsh",    "Weber",
    "Williams", "Yamamoto",   "Müller",  "Peña",     "Núñez",
};

static const char *const streets[] = {
    "Main St",       "Industrial Blvd", "Commerce Dr",     "Oak Ave",          "Elm St",
    "Park Ave",      "Market St",       "Airport Rd",      "Technology Pkwy",  "River Rd",
    "Lakeview Dr",   "Enterprise Way",  "Harbor Blvd",     "Mill St",          "Washington St",
    "State Route 9", "Highway 70 W",    "Peachtree Rd NE", "Distribution Ct",  "Depot St",
    "Foundry Ln",    "Canal St",        "Railroad Ave",    "Corporate Ctr Dr", "Wharf Rd",
};

static const struct city {
	const char *name, *state, *zip3, *area;
} cities[] = {
    {"Charlotte", "NC", "282", "704"},      {"Asheville", "NC", "288", "828"},
    {"Roanoke", "VA", "240", "540"},        {"Richmond", "VA", "232", "804"},
    {"Knoxville", "TN", "379", "865"},      {"Nashville", "TN", "372", "615"},
    {"Atlanta", "GA", "303", "404"},        {"Greenville", "SC", "296", "864"},
    {"Columbus", "OH", "432", "614"},       {"Cleveland", "OH", "441", "216"},
    {"Pittsburgh", "PA", "152", "412"},     {"Harrisburg", "PA", "171", "717"},
    {"Baltimore", "MD", "212", "410"},      {"Newark", "NJ", "071", "973"},
    {"Albany", "NY", "122", "518"},         {"Buffalo", "NY", "142", "716"},
    {"Boston", "MA", "021", "617"},         {"Hartford", "CT", "061", "860"},
    {"Chicago", "IL", "606", "312"},        {"Indianapolis", "IN", "462", "317"},
    {"Detroit", "MI", "482", "313"},        {"Milwaukee", "WI", "532", "414"},
    {"Minneapolis", "MN", "554", "612"},    {"St. Louis", "MO", "631", "314"},
    {"Kansas City", "MO", "641", "816"},    {"Louisville", "KY", "402", "502"},
    {"Memphis", "TN", "381", "901"},        {"Birmingham", "AL", "352", "205"},
    {"Jacksonville", "FL", "322", "904"},   {"Tampa", "FL", "336", "813"},
    {"Miami", "FL", "331", "305"},          {"Houston", "TX", "770", "713"},
    {"Dallas", "TX", "752", "214"},         {"San Antonio", "TX", "782", "210"},
    {"Denver", "CO", "802", "303"},         {"Phoenix", "AZ", "850", "602"},
    {"Salt Lake City", "UT", "841", "801"}, {"Seattle", "WA", "981", "206"},
    {"Portland", "OR", "972", "503"},       {"Sacramento", "CA", "958", "916"},
    {"Los Angeles", "CA", "900", "213"},    {"San Diego", "CA", "921", "619"},
    {"Baton Rouge", "LA", "708", "225"},    {"Omaha", "NE", "681", "402"},
    {"Des Moines", "IA", "503", "515"},     {"Bangor", "ME", "044", "207"},
};

static const char *const mailboxes[] = {"ap", "billing", "accounts", "invoices",
                                        "ar", "orders",  "sales",    "remit"};

static const struct terms {
	const char *code;
	unsigned weight;
} terms[] = {
    {"NET30", 50}, {"2/10N30", 15}, {"NET15", 10}, {"NET45", 8},
    {"NET60", 7},  {"COD", 5},      {"DUE", 5},
};

static const struct unit_def {
	const char *code, *name;
	int measured; /* quantities in hundredths, not whole units */
} units[] = {
    {"BDL", "Bundle", 0},  {"BOX", "Box", 0},  {"CS", "Case", 0},    {"DZ", "Dozen", 0},
    {"EA", "Each", 0},     {"FT", "Foot", 1},  {"GAL", "Gallon", 1}, {"HR", "Hour", 1},
    {"KG", "Kilogram", 1}, {"LB", "Pound", 1}, {"PK", "Pack", 0},    {"PR", "Pair", 0},
    {"ROLL", "Roll", 0},   {"SET", "Set", 0},
};

static const struct product {
	const char *name, *unit;
	int cost_lo, cost_hi; /* cents */
} products[] = {
    {"Hex Bolt", "EA", 8, 450},
    {"Lock Washer", "BOX", 300, 2500},
    {"Machine Screw", "BOX", 400, 3800},
    {"Ball Bearing", "EA", 250, 9500},
    {"V-Belt", "EA", 900, 6500},
    {"Hydraulic Hose", "FT", 150, 1800},
    {"Steel Sheet", "EA", 2500, 24000},
    {"Aluminum Bar", "FT", 300, 2200},
    {"Copper Wire", "FT", 40, 600},
    {"Shrink Wrap", "ROLL", 1800, 7500},
    {"Corrugated Box", "BDL", 2200, 9000},
    {"Wood Pallet", "EA", 900, 3200},
    {"Label Stock", "ROLL", 1500, 8800},
    {"Cutting Oil", "GAL", 1400, 5200},
    {"Hand Cleaner", "CS", 2400, 7800},
    {"Nitrile Gloves", "BOX", 700, 2400},
    {"Safety Glasses", "DZ", 1800, 9600},
    {"Flour", "LB", 35, 190},
    {"Cane Sugar", "LB", 45, 210},
    {"Olive Oil", "GAL", 2200, 6800},
    {"Sea Salt", "LB", 60, 400},
    {"Frozen Shrimp", "LB", 550, 1600},
    {"Canned Tomatoes", "CS", 1800, 4600},
    {"Paper Towels", "CS", 2100, 5400},
    {"Motor Oil", "GAL", 1200, 3600},
    {"Filter Cartridge", "EA", 600, 8400},
    {"Gasket", "EA", 90, 2600},
    {"Resin Pellets", "LB", 70, 380},
    {"Enamel Paint", "GAL", 2600, 7900},
    {"Welding Rod", "LB", 280, 1400},
    {"Pipe Fitting", "EA", 120, 4200},
    {"Cable Tie", "PK", 250, 1900},
    {"Work Boots", "PR", 5400, 16000},
    {"Drill Bit", "SET", 1600, 12000},
    {"Sensor Module", "KG", 900, 4800},
};

static const char *const qualifiers[] = {
    "Stainless",  "Galvanized", "Zinc-Plated", "Grade 5", "Grade 8",  "Heavy-Duty",
    "Food-Grade", "Organic",    "Industrial",  "Premium", "Standard", "Economy",
    "Blue",       "Black",      "White",       "Clear",   "Recycled", "Bulk",
};

static const char *const sizes[] = {
    "1/4 in", "3/8 in", "1/2 in", "3/4 in", "1 in",  "2 in", "12x12x8", "18x12x10",
    "24 in",  "36 in",  "5 lb",   "25 lb",  "50 lb", "1 qt", "5 gal",   "55 gal",
    "Small",  "Medium", "Large",  "XL",     "#10",   "M8",   "M12",     "4 ft",
};

static const char *const services[] = {
    "Machine Repair Labor", "Calibration Service", "Freight Handling", "Consulting",
    "Equipment Rental",     "Pest Control",        "Waste Removal",    "IT Support",
    "Sanitation Service",   "Temporary Labor",
};

/* GL-coded purchase order lines: no item, an expense account. */
static const struct gl_line {
	const char *desc, *gl, *unit;
} gl_lines[] = {
    {"Freight charges", "5200-00", "EA"},      {"Inbound freight - LTL", "5200-00", "EA"},
    {"Fuel surcharge", "5200-00", "EA"},       {"Machine repair labor", "6200-00", "HR"},
    {"Calibration service", "6200-00", "EA"},  {"Forklift rental", "6210-00", "EA"},
    {"Shop supplies - misc", "6310-00", "EA"}, {"Subcontract machining", "5300-00", "EA"},
    {"Pallet disposal fee", "9000-00", "EA"},  {"Office supplies", "6300-00", "EA"},
};

static const struct gl_def {
	const char *no, *name;
	char type;
} gl_base[] = {
    {"1010-00", "Cash - Operating", 'A'},
    {"1020-00", "Cash - Payroll", 'A'},
    {"1030-00", "Cash - Money Market", 'A'},
    {"1040-00", "Cash - Lockbox", 'A'},
    {"1100-00", "Accounts Receivable", 'A'},
    {"1200-00", "Allowance for Doubtful Accounts", 'A'},
    {"1300-00", "Inventory - Raw Materials", 'A'},
    {"1310-00", "Inventory - Finished Goods", 'A'},
    {"1400-00", "Prepaid Expenses", 'A'},
    {"1500-00", "Machinery & Equipment", 'A'},
    {"1510-00", "Accumulated Depreciation", 'A'},
    {"2000-00", "Accounts Payable", 'L'},
    {"2010-00", "Accrued Purchases (Received Not Invoiced)", 'L'},
    {"2100-00", "Accrued Payroll", 'L'},
    {"2200-00", "Sales Tax Payable", 'L'},
    {"2300-00", "Use Tax Payable", 'L'},
    {"2500-00", "Line of Credit", 'L'},
    {"2700-00", "Long-Term Debt", 'L'},
    {"3000-00", "Common Stock", 'Q'},
    {"3100-00", "Retained Earnings", 'Q'},
    {"3200-00", "Owner Distributions", 'Q'},
    {"4000-00", "Sales - Products", 'I'},
    {"4100-00", "Sales - Services", 'I'},
    {"4200-00", "Freight Income", 'I'},
    {"4900-00", "Purchase Discounts Earned", 'I'},
    {"5000-00", "Cost of Goods Sold", 'E'},
    {"5100-00", "Purchases - Raw Materials", 'E'},
    {"5200-00", "Freight In", 'E'},
    {"5300-00", "Subcontract Labor", 'E'},
    {"5400-00", "Inventory Adjustments", 'E'},
    {"6000-00", "Salaries & Wages", 'E'},
    {"6100-00", "Rent", 'E'},
    {"6110-00", "Utilities", 'E'},
    {"6200-00", "Repairs & Maintenance", 'E'},
    {"6210-00", "Equipment Rental", 'E'},
    {"6300-00", "Office Supplies", 'E'},
    {"6310-00", "Shop Supplies", 'E'},
    {"6400-00", "Insurance", 'E'},
    {"6500-00", "Professional Fees", 'E'},
    {"6600-00", "Travel & Entertainment", 'E'},
    {"6700-00", "Telephone & Internet", 'E'},
    {"6800-00", "Advertising", 'E'},
    {"6900-00", "Depreciation Expense", 'E'},
    {"7000-00", "Bank Charges", 'E'},
    {"7100-00", "Interest Expense", 'E'},
    {"8000-00", "Income Tax Expense", 'E'},
    {"9000-00", "Miscellaneous Expense", 'E'},
};

/* Departments of the expense sub-accounts NNNN-01 … NNNN-20 (then "Dept NN"). */
static const char *const departments[] = {
    "Plant 1",   "Plant 2",     "Shipping",   "Receiving",        "Maintenance",
    "Quality",   "Engineering", "Sales",      "Administration",   "Warehouse",
    "Fleet",     "IT",          "Purchasing", "Safety",           "Tooling",
    "Packaging", "Sanitation",  "Lab",        "Customer Service", "Facilities",
};

static const struct tax_def {
	const char *code, *name, *rate;
} tax_codes[] = {
    {"CA-LA", "Los Angeles County CA", "9.500"},
    {"EXEMPT", "Exempt - resale certificate", "0.000"},
    {"FL", "Florida state", "6.000"},
    {"GA-ATL", "Atlanta GA", "8.900"},
    {"NC", "North Carolina state", "4.750"},
    {"NC-MECK", "Mecklenburg County NC", "7.250"},
    {"NONTAX", "Non-taxable", "0.000"},
    {"TN", "Tennessee state", "7.000"},
    {"TX-AUS", "Austin TX", "8.250"},
    {"USE", "Consumer use tax", "6.750"},
    {"VA", "Virginia state", "5.300"},
};

/* Per company: warehouses, divisions, bank accounts (sorted by code). */
static const struct code_name {
	const char *code, *name;
} warehouses[2][5] =
    {
        {{"000", "Main Plant Warehouse"},
         {"EST", "East Distribution Center"},
         {"QC", "Quality Hold"},
         {"RAW", "Raw Materials Yard"},
         {"WST", "West Coast Depot"}},
        {{"000", "Central Cold Storage"},
         {"DRY", "Dry Goods Warehouse"},
         {"FRZ", "Freezer Annex"},
         {"PRT", "Port Terminal"},
         {NULL, NULL}},
},
  divisions[2][5] = {
      {{"00", "Corporate"},
       {"01", "Fabrication"},
       {"02", "Assembly"},
       {"03", "Maintenance"},
       {"04", "Research & Development"}},
      {{"00", "Corporate"},
       {"01", "Processing"},
       {"02", "Distribution"},
       {"03", "Retail Stores"},
       {NULL, NULL}},
};

static const struct bank_def {
	const char *code, *name, *gl;
} banks[2][4] = {
    {{"A", "Operating Checking - First Citizens", "1010-00"},
     {"E", "Equipment Escrow", "1030-00"},
     {"P", "Payroll Checking", "1020-00"},
     {"S", "Money Market Savings", "1030-00"}},
    {{"A", "Operating - Harbor Community Bank", "1010-00"},
     {"L", "Lockbox Deposits", "1040-00"},
     {"P", "Payroll", "1020-00"},
     {NULL, NULL, NULL}},
};

/* ---- PRNG and time ---------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* splitmix64 */
static uint64_t rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return mix64(r->s);
}

/* Uniform in [0, n), n > 0 (the modulo bias is below 2^-30 here). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

static int rng_pct(struct rng *r, unsigned pct)
{
	return rng_below(r, 100) < pct;
}

#define PICK(r, a) ((a)[rng_below((r), APS_ARRAY_LEN(a))])

/* The PRNG of one row: a pure function of (seed, company, stream, row). */
static void rng_row(struct rng *r, uint64_t seed, int co, int stream, uint64_t row)
{
	r->s = mix64(seed ^ mix64(((uint64_t)co << 56) ^ ((uint64_t)stream << 48) ^ row));
}

static char *put_digits(char *p, unsigned v, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* ms of the local wall clock since 1970 → "YYYY-MM-DD" (days ≥ 0 only). */
static void fmt_date(int64_t ms, char out[DATE_LEN])
{
	/* Howard Hinnant's civil_from_days, for days since 1970-01-01 ≥ 0. */
	int64_t days = ms / DAY_MS + 719468;
	unsigned era = (unsigned)(days / 146097);
	unsigned doe = (unsigned)(days - (int64_t)era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	unsigned y = yoe + era * 400 + (m <= 2);
	char *p = out;

	p = put_digits(p, y, 4);
	*p++ = '-';
	p = put_digits(p, m, 2);
	*p++ = '-';
	p = put_digits(p, d, 2);
	*p = '\0';
}

/* → "YYYY-MM-DD HH:MM:SS.mmm" */
static void fmt_ts(int64_t ms, char out[TS_LEN])
{
	unsigned t = (unsigned)(ms % DAY_MS);
	char *p = out + 10;

	fmt_date(ms, out);
	*p++ = ' ';
	p = put_digits(p, t / 3600000, 2);
	*p++ = ':';
	p = put_digits(p, t / 60000 % 60, 2);
	*p++ = ':';
	p = put_digits(p, t / 1000 % 60, 2);
	*p++ = '.';
	p = put_digits(p, t % 1000, 3);
	*p = '\0';
}

/* Amounts and quantities are kept in hundredths: "12.50"; whole → "12" if trim. */
static void fmt_hundredths(int64_t v, int trim, char *out, size_t len)
{
	if (trim && v % 100 == 0)
		snprintf(out, len, "%" PRId64, v / 100);
	else
		snprintf(out, len, "%" PRId64 ".%02" PRId64, v / 100, v % 100);
}

/* ---- the generator ---------------------------------------------------- */

struct gen {
	sqlite3 *db;
	uint64_t seed;
	sqlite3_stmt *ins[I__COUNT];
	const char *path; /* for messages; borrowed */
	char *err;        /* borrowed */
	size_t errlen;
};

/* Inserts one row of n text values (NULL → SQL NULL) with insert `which`. */
static int put_row(struct gen *g, enum ins which, const char *const *vals, int n)
{
	sqlite3_stmt *st = g->ins[which];
	int i, rc = SQLITE_OK;

	for (i = 0; i < n && rc == SQLITE_OK; i++)
		rc = vals[i] ? sqlite3_bind_text(st, i + 1, vals[i], -1, SQLITE_STATIC)
		             : sqlite3_bind_null(st, i + 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return APS_OK;
	snprintf(g->err, g->errlen,
	         "cannot write the demo ERP file %s: %s (%s); check the free "
	         "disk space and try again",
	         g->path, sqlite3_errmsg(g->db), insert_sql[which]);
	return APS_ERR_DB;
}

#define PUT(g, which, ...)                                                                         \
	put_row((g), (which), (const char *const[]){__VA_ARGS__},                                  \
	        (int)APS_ARRAY_LEN(((const char *const[]){__VA_ARGS__})))

static int64_t batch_stamp(const struct gen *g, int co, int stream, unsigned k)
{
	struct rng r;

	rng_row(&r, g->seed, co, ST_BATCH | stream, k);
	return BASE_MS + BATCH_DAY * DAY_MS + (int64_t)rng_below(&r, BATCH_DAYS * DAY_MS);
}

/* A creation time: a working day within CREATE_DAYS, office hours. */
static int64_t created_time(struct rng *r, int64_t from_day, int64_t ndays)
{
	int64_t day = from_day + (int64_t)rng_below(r, (uint64_t)ndays);

	return BASE_MS + day * DAY_MS + 7 * HOUR_MS + (int64_t)rng_below(r, 11 * HOUR_MS);
}

/*
 * A modified time at or after floor: unchanged since then (30 %), stamped by
 * one of the list's batch imports (35 %: these share identical values), or
 * edited in office hours on one of the next 100 days.
 */
static int64_t modified_time(const struct gen *g, struct rng *r, int co, int stream, int64_t floor)
{
	unsigned p = (unsigned)rng_below(r, 100);

	if (p < 30)
		return floor;
	if (p < 65)
		return batch_stamp(g, co, stream, (unsigned)rng_below(r, NBATCH));
	return created_time(r, (floor - BASE_MS) / DAY_MS + 1, 100);
}

/*
 * Records an ERP numbers in sequence (vendors, items) were created in that
 * order: row i of n gets a time in office hours spread over CREATE_DAYS,
 * increasing with i, with a little jitter.
 */
static int64_t sequential_time(struct rng *r, int64_t i, int64_t n)
{
	const int64_t office = 11 * HOUR_MS, span = CREATE_DAYS * office;
	int64_t gap = span / n > 1 ? span / n : 1;
	int64_t t = i * (span / n) + (i * (span % n)) / n + (int64_t)rng_below(r, (uint64_t)gap);

	return BASE_MS + (t / office) * DAY_MS + 7 * HOUR_MS + t % office;
}

static void sequential_stamps(const struct gen *g, struct rng *r, int co, int stream, int64_t i,
                              int64_t n, char created[TS_LEN], char modified[TS_LEN])
{
	int64_t c = sequential_time(r, i, n);

	fmt_ts(c, created);
	fmt_ts(modified_time(g, r, co, stream, c), modified);
}

/* Fills created and modified text for a row of `stream`, created in the window. */
static void stamps(const struct gen *g, struct rng *r, int co, int stream, int64_t from_day,
                   int64_t ndays, char created[TS_LEN], char modified[TS_LEN])
{
	int64_t c = created_time(r, from_day, ndays);

	fmt_ts(c, created);
	fmt_ts(modified_time(g, r, co, stream, c), modified);
}

static const char *status_of(struct rng *r, unsigned inactive_pct)
{
	return rng_pct(r, inactive_pct) ? "I" : "A";
}

static int gen_company(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN];
	struct rng r;

	rng_row(&r, g->seed, co, ST_COMPANY, 0);
	fmt_ts(BASE_MS + 8 * HOUR_MS + (int64_t)rng_below(&r, HOUR_MS), created);
	fmt_ts(modified_time(g, &r, co, ST_COMPANY, BASE_MS + DAY_MS), modified);
	return PUT(g, I_COMPANY, companies[co].code, companies[co].name, companies[co].currency,
	           created, modified);
}

static int gen_units(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN];
	struct rng r;
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(units) && !rc; i++) {
		rng_row(&r, g->seed, co, ST_UNIT, i);
		stamps(g, &r, co, ST_UNIT, 0, 10, created, modified);
		rc = PUT(g, I_UNIT, companies[co].code, units[i].code, units[i].name,
		         !strcmp(units[i].code, "PR") && co ? "I" : "A", created, modified);
	}
	return rc;
}

static int gen_tax_codes(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN];
	const char *status;
	struct rng r;
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(tax_codes) && !rc; i++) {
		rng_row(&r, g->seed, co, ST_TAX, i);
		stamps(g, &r, co, ST_TAX, 0, 60, created, modified);
		status = status_of(&r, 15);
		rc = PUT(g, I_TAX, companies[co].code, tax_codes[i].code, tax_codes[i].name,
		         tax_codes[i].rate, status, created, modified);
	}
	return rc;
}

/* A street address in a random city; zip is ZIP or ZIP+4. */
static const struct city *gen_address(struct rng *r, char *addr1, size_t a1len, char *zip,
                                      size_t ziplen)
{
	/* One draw per statement: the order of evaluation of arguments is unspecified. */
	const struct city *c = &PICK(r, cities);
	unsigned number = 1 + (unsigned)rng_below(r, 9999), zip2, plus4;
	const char *street = PICK(r, streets);

	snprintf(addr1, a1len, "%u %s", number, street);
	zip2 = (unsigned)rng_below(r, 100);
	if (rng_pct(r, 30)) {
		plus4 = (unsigned)rng_below(r, 10000);
		snprintf(zip, ziplen, "%s%02u-%04u", c->zip3, zip2, plus4);
	} else {
		snprintf(zip, ziplen, "%s%02u", c->zip3, zip2);
	}
	return c;
}

static int gen_warehouses(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN], addr1[64], zip[16];
	const struct city *c;
	struct rng r;
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(warehouses[co]) && warehouses[co][i].code && !rc; i++) {
		rng_row(&r, g->seed, co, ST_WAREHOUSE, i);
		c = gen_address(&r, addr1, sizeof(addr1), zip, sizeof(zip));
		stamps(g, &r, co, ST_WAREHOUSE, 0, 30, created, modified);
		rc = PUT(g, I_WAREHOUSE, companies[co].code, warehouses[co][i].code,
		         warehouses[co][i].name, addr1, c->name, c->state, zip, i == 2 ? "I" : "A",
		         created, modified);
	}
	return rc;
}

static int gen_divisions(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN];
	struct rng r;
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(divisions[co]) && divisions[co][i].code && !rc; i++) {
		rng_row(&r, g->seed, co, ST_DIVISION, i);
		stamps(g, &r, co, ST_DIVISION, 0, 30, created, modified);
		rc = PUT(g, I_DIVISION, companies[co].code, divisions[co][i].code,
		         divisions[co][i].name, i == 4 ? "I" : "A", created, modified);
	}
	return rc;
}

static int gen_banks(struct gen *g, int co)
{
	char created[TS_LEN], modified[TS_LEN], acct[16], routing[10];
	unsigned d[9], j, n, sum;
	struct rng r;
	size_t i;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(banks[co]) && banks[co][i].code && !rc; i++) {
		rng_row(&r, g->seed, co, ST_BANK, i);
		n = 9 + (unsigned)rng_below(&r, 4);
		acct[0] = (char)('1' + rng_below(&r, 9));
		for (j = 1; j < n; j++)
			acct[j] = (char)('0' + rng_below(&r, 10));
		acct[n] = '\0';
		/* An ABA routing number: the ninth digit is the checksum. */
		d[0] = (unsigned)rng_below(&r, 4);
		for (j = 1; j < 8; j++)
			d[j] = (unsigned)rng_below(&r, 10);
		sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5];
		d[8] = (10 - sum % 10) % 10;
		for (j = 0; j < 9; j++)
			routing[j] = (char)('0' + d[j]);
		routing[9] = '\0';
		stamps(g, &r, co, ST_BANK, 0, 30, created, modified);
		rc = PUT(g, I_BANK, companies[co].code, banks[co][i].code, banks[co][i].name, acct,
		         routing, companies[co].currency, banks[co][i].gl,
		         !strcmp(banks[co][i].code, "E") ? "I" : "A", created, modified);
	}
	return rc;
}

static int gen_gl_accounts(struct gen *g, int co, int64_t n)
{
	char created[TS_LEN], modified[TS_LEN], no[KEY_LEN], name[96], type[2] = "E";
	const char *status;
	const int64_t slots = 5000 * 99; /* NNNN-SS for NNNN in 5000-9999, SS in 01-99 */
	int64_t extra = n - (int64_t)APS_ARRAY_LEN(gl_base), k, j;
	unsigned main_no, sub;
	size_t i, parent = 0;
	struct rng r;
	int rc = APS_OK;

	for (i = 0; i < APS_ARRAY_LEN(gl_base) && !rc; i++) {
		rng_row(&r, g->seed, co, ST_GL, i);
		stamps(g, &r, co, ST_GL, 0, 5, created, modified);
		type[0] = gl_base[i].type;
		rc = PUT(g, I_GL, companies[co].code, gl_base[i].no, gl_base[i].name, type, "A",
		         created, modified);
	}
	/* Departmental expense sub-accounts, spread evenly over the slots. */
	type[0] = 'E';
	for (k = 0; k < extra && !rc; k++) {
		j = k * slots / extra;
		main_no = 5000 + (unsigned)(j / 99);
		sub = 1 + (unsigned)(j % 99);
		snprintf(no, sizeof(no), "%04u-%02u", main_no, sub);
		while (parent + 1 < APS_ARRAY_LEN(gl_base) &&
		       strcmp(gl_base[parent + 1].no, no) < 0)
			parent++;
		if (sub <= APS_ARRAY_LEN(departments))
			snprintf(name, sizeof(name), "%s - %s", gl_base[parent].name,
			         departments[sub - 1]);
		else
			snprintf(name, sizeof(name), "%s - Dept %02u", gl_base[parent].name, sub);
		rng_row(&r, g->seed, co, ST_GL, APS_ARRAY_LEN(gl_base) + (uint64_t)k);
		stamps(g, &r, co, ST_GL, 0, CREATE_DAYS, created, modified);
		status = status_of(&r, 8);
		rc = PUT(g, I_GL, companies[co].code, no, name, type, status, created, modified);
	}
	return rc;
}

static void vendor_name(struct rng *r, char *out, size_t len)
{
	unsigned p = (unsigned)rng_below(r, 100);
	const char *a, *b, *c;

	if (p < 95) {
		a = p < 60 ? PICK(r, name_first) : PICK(r, surnames);
		b = p < 85 ? PICK(r, name_trade) : PICK(r, surnames);
		c = PICK(r, name_kind);
		snprintf(out, len, p < 85 ? "%s %s %s" : "%s & %s %s", a, b, c);
	} else {
		snprintf(out, len, "%s Brothers", PICK(r, surnames));
	}
}

/* "billing@summitpackaging.example": ASCII letters of the first two words. */
static void vendor_email(struct rng *r, const char *name, char *out, size_t len)
{
	char slug[32];
	size_t n = 0;
	int words = 0;
	const char *p;

	for (p = name; *p && words < 2 && n + 1 < sizeof(slug); p++) {
		if (*p == ' ')
			words++;
		else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			slug[n++] = *p;
		else if (*p >= 'A' && *p <= 'Z')
			slug[n++] = (char)(*p - 'A' + 'a');
	}
	slug[n] = '\0';
	snprintf(out, len, "%s@%s.example", PICK(r, mailboxes), n ? slug : "vendor");
}

static const char *vendor_terms(struct rng *r)
{
	unsigned p = (unsigned)rng_below(r, 100), acc = 0;
	size_t i;

	for (i = 0; i < APS_ARRAY_LEN(terms); i++) {
		acc += terms[i].weight;
		if (p < acc)
			return terms[i].code;
	}
	return terms[0].code;
}

static void vendor_no(int64_t i, char out[KEY_LEN])
{
	snprintf(out, KEY_LEN, "V%07" PRId64, i + 1);
}

static int gen_vendor(struct gen *g, int co, int64_t i, int64_t n)
{
	char no[KEY_LEN], name[128], addr1[64], addr2[32], zip[16], phone[32], email[96], tax[16];
	char created[TS_LEN], modified[TS_LEN];
	const char *a2 = NULL, *ph = NULL, *em = NULL, *tx = NULL, *trm, *sep, *status;
	const struct city *c;
	unsigned p, x;
	struct rng r;

	rng_row(&r, g->seed, co, ST_VENDOR, (uint64_t)i);
	vendor_no(i, no);
	vendor_name(&r, name, sizeof(name));
	c = gen_address(&r, addr1, sizeof(addr1), zip, sizeof(zip));
	p = (unsigned)rng_below(&r, 100);
	if (p < 20)
		snprintf(addr2, sizeof(addr2), "Suite %u", (unsigned)(100 + rng_below(&r, 900)));
	else if (p < 25)
		snprintf(addr2, sizeof(addr2), "PO Box %u", (unsigned)(1 + rng_below(&r, 9999)));
	else if (p < 30)
		snprintf(addr2, sizeof(addr2), "Unit %c", (char)('A' + rng_below(&r, 8)));
	else if (p < 33)
		snprintf(addr2, sizeof(addr2), "Bldg %u", (unsigned)(1 + rng_below(&r, 12)));
	if (p < 33)
		a2 = addr2;
	if (!rng_pct(&r, 5)) {
		/* 555-0100 … 555-0199 are reserved for fiction. */
		x = (unsigned)rng_below(&r, 100);
		if (rng_pct(&r, 10))
			snprintf(phone, sizeof(phone), "(%s) 555-01%02u x%u", c->area, x,
			         (unsigned)(100 + rng_below(&r, 900)));
		else
			snprintf(phone, sizeof(phone), "(%s) 555-01%02u", c->area, x);
		ph = phone;
	}
	if (rng_pct(&r, 85)) {
		vendor_email(&r, name, email, sizeof(email));
		em = email;
	}
	if (rng_pct(&r, 85)) {
		x = 10 + (unsigned)rng_below(&r, 89);
		snprintf(tax, sizeof(tax), "%02u-%07u", x, (unsigned)rng_below(&r, 10000000));
		tx = tax;
	}
	trm = vendor_terms(&r);
	sep = rng_pct(&r, 5) ? "1" : "0";
	status = status_of(&r, 10);
	sequential_stamps(g, &r, co, ST_VENDOR, i, n, created, modified);
	return PUT(g, I_VENDOR, companies[co].code, no, name, addr1, a2, c->name, c->state, zip, ph,
	           em, tx, trm, companies[co].currency, sep, status, created, modified);
}

/* An item's attributes, a pure function of (seed, company, item). */
struct item {
	char no[KEY_LEN];
	char desc[96];
	char type[2];     /* 'I' inventory, 'N' non-inventory, 'S' service */
	const char *unit; /* static */
	const char *gl;   /* the account its purchases go to; static */
	int64_t cost;     /* standard cost, cents */
};

static void item_of(const struct gen *g, int co, int64_t i, struct item *it, struct rng *r)
{
	unsigned p;
	const struct product *pr;
	const char *q;

	rng_row(r, g->seed, co, ST_ITEM, (uint64_t)i);
	snprintf(it->no, sizeof(it->no), "I%07" PRId64, i + 1);
	p = (unsigned)rng_below(r, 100);
	it->type[1] = '\0';
	if (p < 10) {
		it->type[0] = 'S';
		snprintf(it->desc, sizeof(it->desc), "%s", PICK(r, services));
		it->unit = "HR";
		it->gl = "5300-00";
		it->cost = 3500 + (int64_t)rng_below(r, 12000);
		return;
	}
	pr = &PICK(r, products);
	it->type[0] = p < 30 ? 'N' : 'I';
	q = PICK(r, qualifiers);
	snprintf(it->desc, sizeof(it->desc), "%s %s %s", q, pr->name, PICK(r, sizes));
	it->unit = pr->unit;
	it->gl = p < 30 ? "6310-00" : "1300-00";
	it->cost = pr->cost_lo + (int64_t)rng_below(r, (uint64_t)(pr->cost_hi - pr->cost_lo + 1));
}

static int gen_item(struct gen *g, int co, int64_t i, int64_t n)
{
	char created[TS_LEN], modified[TS_LEN], cost[32];
	const char *status;
	struct item it;
	struct rng r;

	item_of(g, co, i, &it, &r);
	fmt_hundredths(it.cost, 0, cost, sizeof(cost));
	status = status_of(&r, 10);
	sequential_stamps(g, &r, co, ST_ITEM, i, n, created, modified);
	return PUT(g, I_ITEM, companies[co].code, it.no, it.desc, it.type, it.unit, cost, status,
	           created, modified);
}

static int unit_measured(const char *code)
{
	size_t i;

	for (i = 0; i < APS_ARRAY_LEN(units); i++)
		if (!strcmp(units[i].code, code))
			return units[i].measured;
	return 0;
}

/* One purchase order line; quantities in hundredths, costs in cents. */
struct po_line {
	struct item it; /* it.no[0] == '\0' for a GL-coded line */
	const char *desc, *unit, *gl;
	int measured;
	int64_t qty, received, cost;
	int64_t part[2]; /* received by each receipt */
};

/* A quantity in (0, q) on the line's grid (whole units unless measured); 0 if none. */
static int64_t partial_qty(struct rng *r, const struct po_line *l, int64_t q)
{
	if (l->measured)
		return q >= 2 ? 1 + (int64_t)rng_below(r, (uint64_t)(q - 1)) : 0;
	return q >= 200 ? 100 * (1 + (int64_t)rng_below(r, (uint64_t)(q / 100 - 1))) : 0;
}

static void gen_po_line(const struct gen *g, struct rng *r, int co, int64_t nitems,
                        struct po_line *l)
{
	const struct gl_line *gl;
	struct rng ir;

	memset(l, 0, sizeof(*l));
	if (rng_pct(r, 75)) {
		item_of(g, co, (int64_t)rng_below(r, (uint64_t)nitems), &l->it, &ir);
		l->desc = l->it.desc;
		l->unit = l->it.unit;
		l->gl = l->it.gl;
		/* The vendor's price: the standard cost ± 10 %. */
		l->cost = l->it.cost * (90 + (int64_t)rng_below(r, 21)) / 100;
		if (l->cost < 1)
			l->cost = 1;
	} else {
		gl = &PICK(r, gl_lines);
		l->desc = gl->desc;
		l->unit = gl->unit;
		l->gl = gl->gl;
		l->cost = 2500 + (int64_t)rng_below(r, 250000);
	}
	l->measured = unit_measured(l->unit);
	if (l->measured) {
		l->qty = 100 + (int64_t)rng_below(r, 50000);
		if (rng_pct(r, 60))
			l->qty -= l->qty % 100;
	} else {
		l->qty = 100 * (1 + (int64_t)rng_below(r, l->it.no[0] ? 240 : 5));
	}
}

/* The received quantities of a PO in status `status`. */
static void receive_po(struct rng *r, char status, struct po_line *lines, int n)
{
	unsigned p;
	int i;

	for (i = 0; i < n; i++) {
		if (status == 'C') {
			lines[i].received = lines[i].qty;
		} else if (status == 'B') {
			p = (unsigned)rng_below(r, 100);
			lines[i].received = p < 45   ? lines[i].qty
			                    : p < 80 ? partial_qty(r, &lines[i], lines[i].qty)
			                             : 0;
		}
	}
	if (status == 'B') {
		/* Backordered: something came, something is still due (line 1). */
		if (lines[0].qty < 200)
			lines[0].qty = 200;
		lines[0].received = partial_qty(r, &lines[0], lines[0].qty);
	}
}

/* Splits what was received over one or two receipts; bit k: receipt k has lines. */
static unsigned split_receipts(struct rng *r, struct po_line *lines, int n)
{
	int i, two = rng_pct(r, 35);
	unsigned has = 0;
	int64_t half;

	for (i = 0; i < n; i++) {
		lines[i].part[0] = lines[i].received;
		lines[i].part[1] = 0;
		if (two && lines[i].received > 0 && !rng_pct(r, 30)) {
			half = lines[i].received / 2;
			if (!lines[i].measured)
				half -= half % 100;
			lines[i].part[0] = half;
			lines[i].part[1] = lines[i].received - half;
		}
		has |= (lines[i].part[0] > 0 ? 1u : 0u) | (lines[i].part[1] > 0 ? 2u : 0u);
	}
	return has;
}

static int put_receipt(struct gen *g, int co, const char *po_no, const char *vendor,
                       struct po_line *lines, int n, int which, int64_t day, int64_t *rcpt_seq,
                       int64_t *created_out)
{
	char no[KEY_LEN], date[DATE_LEN], created[TS_LEN], modified[TS_LEN], line_no[NUM_LEN],
	    po_line[NUM_LEN];
	char qty[32], cost[32];
	int64_t c;
	struct rng r;
	int i, ln = 0, rc;

	(*rcpt_seq)++;
	snprintf(no, sizeof(no), "R%07" PRId64, *rcpt_seq);
	rng_row(&r, g->seed, co, ST_RECEIPT, (uint64_t)*rcpt_seq);
	c = BASE_MS + day * DAY_MS + 8 * HOUR_MS + (int64_t)rng_below(&r, 9 * HOUR_MS);
	fmt_date(c, date);
	fmt_ts(c, created);
	fmt_ts(modified_time(g, &r, co, ST_RECEIPT, c), modified);
	*created_out = c;
	rc = PUT(g, I_RECEIPT, companies[co].code, no, po_no, vendor, date, created, modified);
	for (i = 0; i < n && !rc; i++) {
		if (lines[i].part[which] <= 0)
			continue;
		snprintf(line_no, sizeof(line_no), "%d", ++ln);
		snprintf(po_line, sizeof(po_line), "%d", i + 1);
		fmt_hundredths(lines[i].part[which], 1, qty, sizeof(qty));
		fmt_hundredths(lines[i].cost, 0, cost, sizeof(cost));
		rc = PUT(g, I_RECEIPT_LINE, companies[co].code, no, line_no, po_line,
		         lines[i].it.no[0] ? lines[i].it.no : NULL, qty, cost);
	}
	return rc;
}

static const char po_types[] = "SDRM";
static const char po_statuses[] = "NOBCX";

static int gen_po(struct gen *g, int co, int64_t i, int64_t nvendors, int64_t nitems,
                  int64_t *rcpt_seq)
{
	char no[KEY_LEN], vendor[KEY_LEN], date[DATE_LEN], created[TS_LEN], modified[TS_LEN];
	char total_s[32], type[2] = "S", status[2] = "N", line_no[NUM_LEN], qty[32], rec[32],
	                  cost[32];
	struct po_line lines[MAX_PO_LINES];
	const struct code_name *wh, *div;
	int64_t c, floor, total = 0, day, rday[2], rc_created = 0;
	unsigned p, receipts;
	int n, k, nwh, ndiv, rc = APS_OK;
	struct rng r;

	rng_row(&r, g->seed, co, ST_PO, (uint64_t)i);
	snprintf(no, sizeof(no), "%07" PRId64, i + 1);
	/* The first orders show every type and status; then the usual mix. */
	p = (unsigned)rng_below(&r, 100);
	type[0] = i < 4 ? po_types[i] : p < 80 ? 'S' : p < 92 ? 'D' : p < 97 ? 'R' : 'M';
	p = (unsigned)rng_below(&r, 100);
	status[0] = i < 5    ? po_statuses[i]
	            : p < 8  ? 'N'
	            : p < 33 ? 'O'
	            : p < 48 ? 'B'
	            : p < 93 ? 'C'
	                     : 'X';
	vendor_no((int64_t)rng_below(&r, (uint64_t)nvendors), vendor);
	for (nwh = 0; nwh < 5 && warehouses[co][nwh].code; nwh++)
		;
	for (ndiv = 0; ndiv < 5 && divisions[co][ndiv].code; ndiv++)
		;
	wh = &warehouses[co][type[0] == 'D' ? 0 : rng_below(&r, (uint64_t)nwh)];
	div = &divisions[co][rng_below(&r, (uint64_t)ndiv)];
	day = (int64_t)rng_below(&r, CREATE_DAYS);
	c = created_time(&r, day, 1);
	fmt_date(c, date);
	fmt_ts(c, created);
	p = (unsigned)rng_below(&r, 100);
	n = p < 30 ? 1 : p < 55 ? 2 : p < 75 ? 3 : p < 90 ? 4 : 5;
	for (k = 0; k < n; k++)
		gen_po_line(g, &r, co, nitems, &lines[k]);
	receive_po(&r, status[0], lines, n);
	for (k = 0; k < n; k++)
		total += (lines[k].qty * lines[k].cost + 50) / 100;
	fmt_hundredths(total, 0, total_s, sizeof(total_s));

	/* Receipts first: the order's modified time follows the last one. */
	floor = c;
	receipts = split_receipts(&r, lines, n);
	if (receipts) {
		rday[0] = day + 2 + (int64_t)rng_below(&r, 28);
		rday[1] = rday[0] + 3 + (int64_t)rng_below(&r, 42);
		for (k = 0; k < 2 && !rc; k++) {
			if (!(receipts & (1u << k)))
				continue;
			rc = put_receipt(g, co, no, vendor, lines, n, k, rday[k], rcpt_seq,
			                 &rc_created);
			if (rc_created > floor)
				floor = rc_created;
		}
	}
	fmt_ts(modified_time(g, &r, co, ST_PO, floor), modified);
	if (!rc)
		rc = PUT(g, I_PO, companies[co].code, no, type, status, vendor, date, wh->code,
		         div->code, total_s, created, modified);
	for (k = 0; k < n && !rc; k++) {
		snprintf(line_no, sizeof(line_no), "%d", k + 1);
		fmt_hundredths(lines[k].qty, 1, qty, sizeof(qty));
		fmt_hundredths(lines[k].received, 1, rec, sizeof(rec));
		fmt_hundredths(lines[k].cost, 0, cost, sizeof(cost));
		rc = PUT(g, I_PO_LINE, companies[co].code, no, line_no,
		         lines[k].it.no[0] ? lines[k].it.no : NULL, lines[k].desc, qty, rec,
		         lines[k].unit, cost, lines[k].gl);
	}
	return rc;
}

static int gen_all(struct gen *g, int64_t rows)
{
	int64_t nv, ni, ngl, npo, i, rcpt_seq;
	char seed_s[32], rows_s[32];
	int co, rc;

	snprintf(seed_s, sizeof(seed_s), "%" PRIu64, g->seed);
	snprintf(rows_s, sizeof(rows_s), "%" PRId64, rows);
	rc = PUT(g, I_INFO, "product", DEMO_ERP_PRODUCT);
	if (!rc)
		rc = PUT(g, I_INFO, "version", DEMO_ERP_VERSION);
	if (!rc)
		rc = PUT(g, I_INFO, "utc_offset", DEMO_ERP_UTC_OFFSET);
	if (!rc)
		rc = PUT(g, I_INFO, "seed", seed_s);
	if (!rc)
		rc = PUT(g, I_INFO, "rows", rows_s);
	for (co = 0; co < (int)APS_ARRAY_LEN(companies) && !rc; co++) {
		nv = co == 0 ? rows : rows / 4 > 0 ? rows / 4 : 1;
		ni = nv / 2 > 0 ? nv / 2 : 1;
		npo = ni;
		ngl = 50 + nv / 20 < nv ? 50 + nv / 20 : nv;
		if (ngl < (int64_t)APS_ARRAY_LEN(gl_base))
			ngl = (int64_t)APS_ARRAY_LEN(gl_base);
		rc = gen_company(g, co);
		if (!rc)
			rc = gen_units(g, co);
		if (!rc)
			rc = gen_tax_codes(g, co);
		if (!rc)
			rc = gen_warehouses(g, co);
		if (!rc)
			rc = gen_divisions(g, co);
		if (!rc)
			rc = gen_gl_accounts(g, co, ngl);
		if (!rc)
			rc = gen_banks(g, co);
		for (i = 0; i < nv && !rc; i++)
			rc = gen_vendor(g, co, i, nv);
		for (i = 0; i < ni && !rc; i++)
			rc = gen_item(g, co, i, ni);
		rcpt_seq = 0;
		for (i = 0; i < npo && !rc; i++)
			rc = gen_po(g, co, i, nv, ni, &rcpt_seq);
	}
	return rc;
}

static int exec_sql(struct gen *g, const char *sql, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(g->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return APS_OK;
	snprintf(g->err, g->errlen, "cannot %s in the demo ERP file %s: %s", what, g->path,
	         msg ? msg : sqlite3_errmsg(g->db));
	sqlite3_free(msg);
	return APS_ERR_DB;
}

/* Removes path.tmp and its SQLite side files, left by an earlier crash. */
static void unlink_tmp(const char *tmp)
{
	static const char *const sfx[] = {"", "-journal", "-wal", "-shm"};
	char p[4200];
	size_t i;

	for (i = 0; i < APS_ARRAY_LEN(sfx); i++)
		if (snprintf(p, sizeof(p), "%s%s", tmp, sfx[i]) < (int)sizeof(p))
			unlink(p);
}

static int sync_path(const char *path)
{
	/* for writing: Windows flushes only a file opened to be written */
	int fd = open(path, O_RDWR | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = aps_file_sync(fd);
	close(fd);
	return rc;
}

/* Moves tmp to path without ever replacing a file that appeared meanwhile. */
static int publish(const char *tmp, const char *path, char *err, size_t errlen)
{
	char dir[4096];
	size_t n;
	int rc = aps_file_publish(tmp, path);

	if (rc == APS_ERR_EXISTS) {
		snprintf(err, errlen,
		         "%s appeared while the demo ERP was being generated; it was "
		         "left as it is: choose another --out path or remove it first",
		         path);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "cannot move %s to %s: %s", tmp, path, strerror(errno));
		return rc;
	}
	/* Make the new name durable too. */
	snprintf(dir, sizeof(dir), "%s", path);
	for (n = strlen(dir); n && !aps_path_sep(dir[n - 1]); n--)
		;
	if (n > 1)
		n--; /* the separator, unless it is the root */
	snprintf(dir + n, sizeof(dir) - n, "%s", n ? "" : ".");
	aps_dir_sync(dir);
	return APS_OK;
}

int demo_erp_generate(const char *path, int64_t rows, uint64_t seed, char *err, size_t errlen)
{
	struct gen g = {.seed = seed, .path = path, .err = err, .errlen = errlen};
	char tmp[4096];
	struct stat st;
	int rc, i, made = 0;

	if (!path || !*path) {
		snprintf(err, errlen, "no path given for the demo ERP file (--out PATH)");
		return APS_ERR_INVAL;
	}
	if (rows < DEMO_ERP_MIN_ROWS || rows > DEMO_ERP_MAX_ROWS) {
		snprintf(err, errlen, "--rows %" PRId64 " is out of range: give %d to %d vendors",
		         rows, DEMO_ERP_MIN_ROWS, DEMO_ERP_MAX_ROWS);
		return APS_ERR_RANGE;
	}
	if (strlen(path) + sizeof(".tmp-journal") > sizeof(tmp)) {
		snprintf(err, errlen, "the path of the demo ERP file is too long (%zu bytes)",
		         strlen(path));
		return APS_ERR_RANGE;
	}
	if (lstat(path, &st) == 0) {
		snprintf(err, errlen,
		         "%s already exists; the demo ERP generator never overwrites a "
		         "file: choose another --out path or remove it first",
		         path);
		return APS_ERR_EXISTS;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink_tmp(tmp);
	made = 1;
	rc = sqlite3_open_v2(
	    tmp, &g.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen,
		         "cannot create the demo ERP file %s: %s; check that the "
		         "directory exists and is writable",
		         tmp, g.db ? sqlite3_errmsg(g.db) : sqlite3_errstr(rc));
		rc = APS_ERR_IO;
		goto out;
	}
	/* Nothing to roll back to: a failure deletes the file. threads: CREATE INDEX sorts
	 * on two cores. */
	rc = exec_sql(&g,
	              "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
	              " PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA threads=2",
	              "set up writing");
	if (!rc)
		rc = exec_sql(&g, schema_sql, "create the tables");
	if (!rc)
		rc = exec_sql(&g, demo_ap_schema_sql, "create the AP tables");
	for (i = 0; i < I__COUNT && !rc; i++) {
		if (sqlite3_prepare_v2(g.db, insert_sql[i], -1, &g.ins[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "cannot prepare %s: %s", insert_sql[i],
			         sqlite3_errmsg(g.db));
			rc = APS_ERR_DB;
		}
	}
	if (!rc)
		rc = exec_sql(&g, "BEGIN", "start writing");
	if (!rc)
		rc = gen_all(&g, rows);
	if (!rc)
		rc = exec_sql(&g, index_sql, "create the indexes");
	if (!rc)
		rc = exec_sql(&g, "COMMIT", "commit");
	for (i = 0; i < I__COUNT; i++)
		sqlite3_finalize(g.ins[i]);
	if (!rc)
		rc = exec_sql(&g, "PRAGMA journal_mode=WAL", "switch to WAL");
	if (sqlite3_close(g.db) != SQLITE_OK && !rc) {
		snprintf(err, errlen, "cannot close the demo ERP file %s: %s", tmp,
		         sqlite3_errmsg(g.db));
		rc = APS_ERR_DB;
	}
	g.db = NULL;
	if (!rc && sync_path(tmp)) {
		snprintf(err, errlen, "cannot write the demo ERP file %s to disk: %s", tmp,
		         strerror(errno));
		rc = APS_ERR_IO;
	}
	if (!rc)
		rc = publish(tmp, path, err, errlen);
out:
	if (g.db)
		sqlite3_close(g.db);
	if (rc && made)
		unlink_tmp(tmp);
	return rc;
}
